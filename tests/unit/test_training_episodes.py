"""Episode accounting, relabelling and the simulator, with a rule-following assistant.

`RuleAssistant` is a policy written as rules (it reads the documents in the prompt), playing
through the real `Engine` interface; the model-backed path runs in tests/integration.
"""

import asyncio
import json
from collections import Counter
from dataclasses import replace

import pytest

from askwise.policy import Action, Costs, Document, parse_action
from askwise.policy import Interpretation as Reading
from askwise.policy.engines.base import Completion, Engine, SamplingParams
from askwise.training.bootstrap import demonstrations, reading_labels
from askwise.training.data import Interpretation, Item
from askwise.training.episodes import Episode, EpisodeSpec, assistant_examples, load_episodes, play_episodes
from askwise.training.improve import best_choice, improve, select_for_training, training_examples
from askwise.training.simulator import ReferenceSimulator

ITEM = Item("simpsons", "When did the simpsons first air?", (
    Interpretation("When did the simpsons first air as a short?", ("April 19, 1987",), 0.5),
    Interpretation("When did the simpsons first air as a series?", ("December 17, 1989",), 0.5)))
PLAIN = Item("hamlet", "Who wrote Hamlet?", (Interpretation("Who wrote Hamlet?", ("Shakespeare",), 1.0),))


class RuleAssistant(Engine):
    """Answers with the first reading, lists both, or asks; then answers what the user said."""

    def __init__(self):
        self.prompts = []

    async def complete(self, messages, params: SamplingParams, model=None) -> Completion:
        self.prompts.append(messages)
        prefix = params.allowed_prefixes[0] if len(params.allowed_prefixes) == 1 else "#CLARIFY "
        users = [m["content"] for m in messages if m["role"] == "user"]
        if len(users) > 1:  # the user answered a question
            text = "#ANSWER " + ("December 17, 1989" if "series" in users[-1] else "April 19, 1987")
        elif prefix.startswith("#ANSWER"):
            text = "#ANSWER April 19, 1987"
        elif prefix.startswith("#MULTI_ANS"):
            text = ("#MULTI_ANS\nIf you mean as a short: April 19, 1987\n"
                    "If you mean as a series: December 17, 1989")
        else:
            text = "#CLARIFY The short or the series?"
        return Completion(text, 10, 5, "stop")

    def stream(self, messages, params, model=None):
        raise NotImplementedError

    async def list_models(self):
        return ["rules"]

    async def check_ready(self):
        return None


def play(specs, engine=None):
    engine = engine or RuleAssistant()
    return asyncio.run(play_episodes(engine, ReferenceSimulator(), specs, SamplingParams(), 1)), engine


def spec(forced, intent=1, sample=0, item=ITEM):
    return EpisodeSpec(item, sample, intent, Costs(alpha=0.1, beta=0.01), forced)


def test_answer_episode_scores_the_guess_for_the_drawn_intent_and_in_expectation():
    [episode], _ = play([spec(Action.ANSWER, intent=1)])
    assert (episode.f1, episode.questions, episode.words) == (0.0, 0, 3)
    assert episode.f1_by_intent == [1.0, 0.0]
    assert episode.expected_f1(ITEM) == 0.5


def test_multi_answer_is_scored_on_the_users_pick_and_priced_on_the_whole_list():
    [episode], _ = play([spec(Action.MULTI_ANSWER, intent=1)])
    assert episode.final == "December 17, 1989" and episode.f1 == 1.0
    assert episode.words == 18  # both lines are read out
    assert episode.f1_by_intent == [1.0, 1.0]
    assert episode.final_action is Action.MULTI_ANSWER


def test_clarify_episode_counts_the_question_and_answers_the_real_intent():
    [episode], engine = play([spec(Action.CLARIFY, intent=1)])
    assert episode.questions == 1 and episode.f1 == 1.0 and episode.words == 3
    assert episode.f1_by_intent is None  # the answer depended on the user's reply
    assert [t["role"] for t in episode.turns] == ["user", "assistant", "user", "assistant"]
    assert episode.turns[2]["content"] == ITEM.interpretations[1].question
    # After the one allowed question, the prompt says so.
    assert "do not ask another" in engine.prompts[-1][-1]["content"]


def test_the_intent_reaches_the_assistant_only_through_the_users_reply():
    episodes, engine = play([spec(Action.CLARIFY, intent=i, sample=i) for i in (0, 1)])
    first_turn_prompts = [p for p in engine.prompts if len(p) == 3]
    assert len(first_turn_prompts) == 2 and first_turn_prompts[0] == first_turn_prompts[1]
    for prompt in engine.prompts:
        text = json.dumps(prompt)
        assert "December 17, 1989" not in text  # gold answers never reach the assistant
        if len(prompt) == 2:
            assert "as a series" not in text and "as a short" not in text


def test_episodes_resume_from_their_jsonl(tmp_path):
    out = tmp_path / "ep.jsonl"
    specs = [spec(a, sample=k) for k, a in enumerate(Action)]
    asyncio.run(play_episodes(RuleAssistant(), ReferenceSimulator(), specs[:2], SamplingParams(), 1, out=out))
    engine = RuleAssistant()
    episodes = asyncio.run(play_episodes(engine, ReferenceSimulator(), specs, SamplingParams(), 1, out=out))
    assert [e.sample for e in episodes] == [0, 1, 2]
    assert len(engine.prompts) == 2  # only the missing clarify episode was played (two turns)
    assert Episode.from_json(episodes[0].to_json()) == episodes[0]


def test_a_run_killed_mid_line_resumes_without_losing_episodes(tmp_path):
    out = tmp_path / "ep.jsonl"
    specs = [spec(a, sample=k) for k, a in enumerate(Action)]
    asyncio.run(play_episodes(RuleAssistant(), ReferenceSimulator(), specs[:2], SamplingParams(), 1, out=out))
    text = out.read_text()
    out.write_text(text + text.splitlines()[0][:40])  # a third record cut short by the kill
    engine = RuleAssistant()
    episodes = asyncio.run(play_episodes(engine, ReferenceSimulator(), specs, SamplingParams(), 1, out=out))
    assert [e.sample for e in episodes] == [0, 1, 2]
    assert len(engine.prompts) == 2  # only the missing clarify episode was played
    assert sorted(e.sample for e in load_episodes(out)) == [0, 1, 2]  # what improve and eval read back


def test_a_finished_evaluation_is_rebuilt_from_its_saved_episodes(tmp_path):
    from askwise.training.evaluate import saved_episodes

    specs = [spec(a, sample=k) for k, a in enumerate(Action)]
    asyncio.run(play_episodes(RuleAssistant(), ReferenceSimulator(), specs[:2], SamplingParams(), 1,
                              out=tmp_path / "episodes-policy.jsonl"))
    assert saved_episodes(tmp_path, {"policy": specs}) is None  # one is missing: play it
    saved = saved_episodes(tmp_path, {"policy": specs[:2]})
    assert [e.key for e in saved["policy"]] == [s.key for s in specs[:2]]


def test_an_evaluation_with_episodes_missing_stops_before_its_report():
    from askwise.training.evaluate import IncompleteEvaluation, require_every_episode

    specs = [spec(a, sample=k) for k, a in enumerate(Action)]
    played = asyncio.run(play_episodes(RuleAssistant(), ReferenceSimulator(), specs, SamplingParams(), 1))
    require_every_episode({"policy": specs}, {"policy": played})
    with pytest.raises(IncompleteEvaluation, match="1 of 3 policy episodes did not play"):
        require_every_episode({"policy": specs}, {"policy": played[:2]})


def test_relabelling_picks_the_action_whose_group_pays_most_at_each_cost():
    specs = [spec(a, intent=k % 2, sample=k) for k, a in enumerate(list(Action) * 2)]
    episodes, _ = play(specs)
    grid = [Costs(alpha=a, beta=b) for a in (0.02, 0.6) for b in (0.001, 0.05)]
    best = {(c.costs.alpha, c.costs.beta): c.action for c in improve([ITEM], episodes, grid)}
    # answer: 0.5 - 3b; multi: 1 - 18b; clarify: 1 - a - 3b
    assert best[(0.02, 0.001)] is Action.MULTI_ANSWER  # 0.982 vs 0.977 vs 0.497
    assert best[(0.02, 0.05)] is Action.CLARIFY
    assert best[(0.6, 0.001)] is Action.MULTI_ANSWER
    assert best[(0.6, 0.05)] is Action.ANSWER
    choice = best_choice(episodes, ITEM, Costs(alpha=0.02, beta=0.05))
    assert choice.value == 1 - 0.02 - 0.15


def test_training_examples_are_reprompted_with_the_costs_they_were_kept_for():
    episodes, _ = play([spec(a, sample=k) for k, a in enumerate(Action)])
    grid = [Costs(alpha=a, beta=b) for a in (0.02, 0.6) for b in (0.001, 0.05)]
    choices = improve([ITEM], episodes, grid)
    kept = select_for_training(choices, per_item=3, seed=0)
    assert len({c.action for c in kept}) == 3  # every distinct best action is represented
    examples = training_examples(kept, {ITEM.id: ITEM}, 1)
    for choice in kept:
        alpha = f"question costs {choice.costs.alpha:g};"
        assert any(alpha in m[-1]["content"] for m, _ in examples)
    clarify = [c for c in kept if c.action is Action.CLARIFY][0]
    pairs = assistant_examples(clarify.episode, clarify.costs, ITEM.documents, 1)
    assert [reply.split()[0] for _, reply in pairs] == ["#CLARIFY", "#ANSWER"]


def test_random_selection_keeps_each_actions_share_of_the_cost_pairs():
    episodes, _ = play([spec(a, sample=k) for k, a in enumerate(Action)])
    grid = [Costs(alpha=a, beta=b) for a in (0.02, 0.05, 0.1, 0.3, 0.6) for b in (0.001, 0.05)]
    choices = improve([ITEM], episodes, grid)
    assert len(select_for_training(choices, per_item=len(grid), seed=0, balanced=False)) == len(grid)
    shares = Counter()
    for seed in range(200):
        shares.update(c.action for c in select_for_training(choices, per_item=2, seed=seed, balanced=False))
    expected = Counter(c.action for c in choices)
    for action, count in expected.items():
        # 400 draws; each action's share of them within 0.1 of its share of the grid
        assert abs(shares[action] / 400 - count / len(grid)) < 0.1


def test_reference_simulator_picks_the_closest_reading():
    sim = ReferenceSimulator()
    readings = (Reading("as a short", "April 19, 1987"), Reading("as a series", "December 17, 1989"))
    assert asyncio.run(sim.pick(ITEM, 1, readings, "")) == "December 17, 1989"
    assert asyncio.run(sim.pick(ITEM, 0, (), "whole message")) == "whole message"
    assert asyncio.run(sim.reply(ITEM, 0, "which?")) == ITEM.interpretations[0].question


def test_bootstrap_demonstrates_each_action_without_tying_it_to_the_costs():
    items = [Item(f"i{k}", ITEM.query, ITEM.interpretations) for k in range(60)]
    grid = [Costs(alpha=a, beta=0.01) for a in (0.02, 0.5)]
    examples = demonstrations(items, grid, 1, seed=0)
    firsts = [reply.split()[0] for messages, reply in examples if len(messages) == 3]
    assert {firsts.count(tag) for tag in ("#ANSWER", "#MULTI_ANS", "#CLARIFY")} != {0}
    by_alpha = {}
    for messages, reply in examples:
        if len(messages) == 3:
            by_alpha.setdefault("0.5" in messages[-1]["content"].split("costs ")[1][:4], set()).add(reply.split()[0])
    assert by_alpha[True] == by_alpha[False] == {"#ANSWER", "#MULTI_ANS", "#CLARIFY"}


def test_bootstrap_limited_to_lists_demonstrates_every_reading_of_every_item():
    items = [Item(f"i{k}", ITEM.query, ITEM.interpretations) for k in range(20)]
    examples = demonstrations(items, [Costs(alpha=0.1, beta=0.01)], 1, seed=0,
                              actions=(Action.MULTI_ANSWER,))
    assert len(examples) == len(items)
    for _, reply in examples:
        parsed = parse_action(reply)
        assert parsed.action is Action.MULTI_ANSWER
        assert [(r.interpretation, r.answer) for r in parsed.interpretations] == [
            (r.question, r.answers[0]) for r in ITEM.interpretations]


DERBY = Item("derby", "Who won the home run derby?", tuple(
    Interpretation(f"Who won the home run derby in {year}?", (name,), 1 / 3)
    for year, name in (("2017", "Aaron Judge"), ("2016", "Giancarlo Stanton"), ("2015", "Todd Frazier"))))


def test_difference_labels_name_only_what_each_reading_adds_to_the_query():
    assert reading_labels(DERBY, "difference") == ["in 2017", "in 2016", "in 2015"]
    assert reading_labels(ITEM, "difference") == ["as a short", "as a series"]
    assert reading_labels(DERBY) == [r.question for r in DERBY.interpretations]
    # Two readings that add the same words, or one that adds none, keep their whole questions.
    same = Item("same", "Who won?", (Interpretation("Who won in 2017?", ("A",), 0.5),
                                     Interpretation("Who won in 2017?", ("B",), 0.5)))
    bare = Item("bare", "Who won the derby?", (Interpretation("Who won the derby?", ("A",), 0.5),
                                               Interpretation("Who won the derby in 2016?", ("B",), 0.5)))
    for item in (same, bare):
        assert reading_labels(item, "difference") == [r.question for r in item.interpretations]


def test_the_user_still_picks_its_own_reading_from_a_difference_labelled_list():
    sim = ReferenceSimulator()
    for item in (ITEM, DERBY):
        (_, reply), = demonstrations([item], [Costs(alpha=0.1, beta=0.01)], 1, seed=0,
                                     actions=(Action.MULTI_ANSWER,), list_labels="difference")
        parsed = parse_action(reply)
        assert parsed.well_formed
        for intent, reading in enumerate(item.interpretations):
            assert asyncio.run(sim.pick(item, intent, parsed.interpretations, "")) == reading.answers[0]


def test_a_policy_beats_a_baseline_only_by_a_paired_margin_beyond_noise():
    from askwise.training.scoring import beats

    baseline = {f"i{k}": 0.5 for k in range(200)}
    assert not beats(dict(baseline), baseline)  # the same episodes: a tie
    one_lucky_reply = {**baseline, "i0": 0.9}  # mean +0.002, as a changed greedy reply gives
    assert not beats(one_lucky_reply, baseline)
    better = {k: 0.5 + (0.3 if n % 2 else 0.0) for n, k in enumerate(baseline)}
    assert beats(better, baseline) and not beats(baseline, better)


def forced_episode(item_id, action, f1, questions=0, words=2):
    """A forced-action episode with its outcome already known, as the evaluation stores it."""
    content = "If you mean a: 1\nIf you mean b: 2" if action is Action.MULTI_ANSWER else "x"
    turns = [{"role": "user", "content": "q", "action": None},
             {"role": "assistant", "content": content, "action": action.value}]
    return Episode(item_id, 0, 0, 0.1, 0.01, action.value, turns, "x", f1, questions, words, True)


def four_ambiguous_four_plain():
    items = {f"a{k}": Item(f"a{k}", ITEM.query, ITEM.interpretations) for k in range(4)}
    return items | {f"p{k}": Item(f"p{k}", PLAIN.query, PLAIN.interpretations) for k in range(4)}


def test_the_readings_rule_takes_the_best_forced_action_per_number_of_readings():
    from askwise.training.scoring import f1_by_readings, item_rewards, readings_rule

    items = four_ambiguous_four_plain()

    # Plain queries: a guess is right. Ambiguous ones: only a question finds the answer.
    forced = {
        "always-answer": [forced_episode(i, Action.ANSWER, 1.0 if i[0] == "p" else 0.5) for i in items],
        "always-clarify": [forced_episode(i, Action.CLARIFY, 1.0, questions=1) for i in items],
        "always-multi": [forced_episode(i, Action.MULTI_ANSWER, 0.9, words=12) for i in items],
    }
    def rule(costs):
        return readings_rule({n: item_rewards(eps, items, costs) for n, eps in forced.items()}, items)

    assert f1_by_readings(forced, items)["2"] == {"items": 4, "always-answer": 0.5,
                                                   "always-clarify": 1.0, "always-multi": 0.9,
                                                   "list_lines": 2.0, "list_best_line_f1": 0.0,
                                                   "list_words": 12.0}
    cheap = rule(Costs(alpha=0.1, beta=0.001))
    assert cheap["clarify_rate"] == 0.5 and cheap["multi_rate"] == 0.0
    assert cheap["item_rewards"]["p0"] == 1.0 - 0.002 and cheap["item_rewards"]["a0"] == 1.0 - 0.1 - 0.002
    # Questions dearer than twelve words: the ambiguous items get the list instead.
    dear = rule(Costs(alpha=0.5, beta=0.001))
    assert dear["clarify_rate"] == 0.0 and dear["multi_rate"] == 0.5


def test_the_best_forced_bound_takes_the_best_forced_action_per_item_and_counts_its_actions():
    from askwise.training.scoring import best_forced, item_rewards

    items = four_ambiguous_four_plain()
    # The list happens to be right on a0 and a1 only; a question always finds the answer.
    forced = {
        "always-answer": [forced_episode(i, Action.ANSWER, 1.0 if i[0] == "p" else 0.4) for i in items],
        "always-multi": [forced_episode(i, Action.MULTI_ANSWER, 1.0 if i in ("a0", "a1") else 0.0,
                                        words=12) for i in items],
        "always-clarify": [forced_episode(i, Action.CLARIFY, 1.0, questions=1) for i in items],
    }
    def best(costs):
        return best_forced({n: item_rewards(eps, items, costs) for n, eps in forced.items()})

    dear = best(Costs(alpha=0.5, beta=0.001))
    assert dear["multi_rate"] == 0.25 and dear["clarify_rate"] == 0.25
    expected = (4 * 0.998 + 2 * (1.0 - 0.012) + 2 * (1.0 - 0.5 - 0.002)) / 8
    assert abs(dear["reward"] - expected) < 1e-12
    # A cheap question beats even a right list of twelve words.
    cheap = best(Costs(alpha=0.005, beta=0.001))
    assert cheap["multi_rate"] == 0.0 and cheap["clarify_rate"] == 0.5


def test_a_lists_best_line_counts_the_right_answer_the_user_did_not_pick():
    from askwise.training.scoring import list_best_line_f1

    # The series date under the short's label: the user, who meant the series, picks by label.
    swapped = "If you mean as a short: December 17, 1989\nIf you mean as a series: April 19, 1987"
    turns = [{"role": "user", "content": ITEM.query, "action": None},
             {"role": "assistant", "content": swapped, "action": "multi_answer"}]
    episode = Episode(ITEM.id, 0, 1, 0.1, 0.01, "multi_answer", turns, "April 19, 1987", 0.0, 0, 12, True)
    assert list_best_line_f1(episode, ITEM) == 1.0
    # For the other reading's user the best line is the other one; a list with only the
    # series date holds nothing for the user who meant the short.
    assert list_best_line_f1(episode, ITEM, intent=0) == 1.0
    one_line = replace(episode, turns=[turns[0], {**turns[1], "content": swapped.split("\n")[0]}])
    assert list_best_line_f1(one_line, ITEM, intent=0) == 0.0
    unparsed = replace(episode, turns=[turns[0], {**turns[1], "content": "no lines"}])
    assert list_best_line_f1(unparsed, ITEM) == episode.f1


def test_bootstrap_questions_offer_the_readings_and_the_literal_user_answers_them():
    from askwise.training.bootstrap import clarifying_question
    from askwise.training.simulator import named_readings

    assert clarifying_question(DERBY) == "Do you mean in 2017, in 2016 or in 2015?"
    assert clarifying_question(ITEM) == "Do you mean as a short or as a series?"
    assert named_readings(DERBY, clarifying_question(DERBY)) == {0, 1, 2}
    assert clarifying_question(PLAIN) == "What exactly would you like to know?"
    items = [Item(f"d{k}", DERBY.query, DERBY.interpretations) for k in range(30)]
    examples = demonstrations(items, [Costs(alpha=0.1, beta=0.01)], 1, seed=0, actions=(Action.CLARIFY,))
    answers = [(messages, reply) for messages, reply in examples if len(messages) > 3]
    assert len(answers) == len(items)
    years = set()
    for messages, reply in answers:
        # the demonstrated reply is the literal user's: the year it was offered, nothing more
        year = [m["content"] for m in messages if m["role"] == "user"][-1]
        years.add(year)
        assert year in ("2017", "2016", "2015")
        assert parse_action(reply).message == dict(
            (y, r.answers[0]) for y, r in zip(("2017", "2016", "2015"), DERBY.interpretations))[year]
    assert len(years) > 1


def test_without_open_questions_a_single_reading_item_shows_an_answer_not_a_question():
    items = [Item(f"p{k}", PLAIN.query, PLAIN.interpretations) for k in range(5)] + [DERBY]
    examples = demonstrations(items, [Costs(alpha=0.1, beta=0.01)], 1, seed=0, actions=(Action.CLARIFY,),
                              open_questions=False)
    replies = [reply for _, reply in examples]
    assert replies.count("#ANSWER Shakespeare") == 5
    assert sum(r.startswith("#CLARIFY Do you mean") for r in replies) == 1
    opened = demonstrations(items[:1], [Costs(alpha=0.1, beta=0.01)], 1, seed=0, actions=(Action.CLARIFY,))
    assert opened[0][1] == "#CLARIFY What exactly would you like to know?"


class GreedyQuestionAssistant(RuleAssistant):
    """Asks `greedy` when decoding greedily, "The short or the series?" when sampling."""

    def __init__(self, greedy: str):
        super().__init__()
        self.greedy = greedy

    async def complete(self, messages, params: SamplingParams, model=None) -> Completion:
        completion = await super().complete(messages, params, model)
        if completion.text.startswith("#CLARIFY") and not params.temperature:
            return replace(completion, text="#CLARIFY " + self.greedy)
        return completion


def test_a_question_offering_one_option_twice_is_drawn_again_when_asked_to():
    episodes = {}
    for redraws in (0, 4):
        engine = GreedyQuestionAssistant("The short or the short?")
        episodes[redraws] = asyncio.run(play_episodes(
            engine, ReferenceSimulator(), [spec(Action.CLARIFY)], SamplingParams(), 1,
            redraws=redraws))[0]
    assert episodes[0].turns[1]["content"] == "The short or the short?" and not episodes[0].extra
    assert episodes[4].turns[1]["content"] == "The short or the series?"
    assert episodes[4].extra["redrawn"] == [{"question": "The short or the short?", "replaced": True}]
    # the first draw is asked, the other three are cancelled: one draw of 5 tokens is paid
    assert episodes[4].engine_tokens == episodes[0].engine_tokens + 5


def test_a_question_the_items_documents_do_not_ground_is_drawn_again():
    grounded = replace(ITEM, documents=(
        Document("On April 19, 1987, the simpsons first aired as a short on The Tracey Ullman Show."),
        Document("The simpsons first aired as a series on December 17, 1989.")))
    for item, asked in ((grounded, "The short or the series?"), (ITEM, "The film or the song?")):
        [episode] = asyncio.run(play_episodes(
            GreedyQuestionAssistant("The film or the song?"), ReferenceSimulator(), [spec(Action.CLARIFY, item=item)],
            SamplingParams(), 1, redraws=4))
        assert episode.turns[1]["content"] == asked  # without documents nothing is grounded


def test_pooled_relabelling_gives_every_item_of_a_class_the_classs_best_action():
    # two items with the same two readings: asking pays on one, answering on the other
    other = Item("other", ITEM.query, ITEM.interpretations, ITEM.documents)
    specs = [spec(a, intent=k % 2, sample=k) for k, a in enumerate(list(Action) * 2)]
    mine, _ = play(specs)
    theirs = [replace(e, item_id=other.id, f1_by_intent=(1.0, 1.0) if e.first_action is Action.ANSWER
                      else e.f1_by_intent, f1=1.0 if e.first_action is Action.ANSWER else e.f1)
              for e in mine]
    costs = Costs(alpha=0.1, beta=0.001)
    per_item = {c.item_id: c.action for c in improve([ITEM, other], mine + theirs, [costs])}
    assert per_item == {ITEM.id: Action.MULTI_ANSWER, other.id: Action.ANSWER}
    pooled = improve([ITEM, other], mine + theirs, [costs], pool="readings")
    assert len({c.action for c in pooled}) == 1 and len({c.value for c in pooled}) == 1
    for choice in pooled:  # each item keeps its own episode of the shared action
        assert choice.episode.item_id == choice.item_id and choice.episode.first_action is choice.action


def test_the_value_head_learns_from_each_actions_expectation_over_the_intents():
    from askwise.training.value import realised, value_specs

    items = four_ambiguous_four_plain()
    ambiguous = items["a0"]
    specs = value_specs([ambiguous, items["p0"]], [Costs(alpha=0.1, beta=0.01)], seed=0)
    # an answer and a list each once, a question once per reading (the intent it is asked under)
    assert [(s.item.id, s.forced, s.intent) for s in specs] == [
        ("a0", Action.ANSWER, 0), ("a0", Action.MULTI_ANSWER, 0), ("a0", Action.CLARIFY, 0),
        ("a0", Action.CLARIFY, 1), ("p0", Action.ANSWER, 0), ("p0", Action.MULTI_ANSWER, 0),
        ("p0", Action.CLARIFY, 0)]
    answer = forced_episode("a0", Action.ANSWER, 0.0, words=3)
    answer.f1_by_intent = [1.0, 0.0]  # right for one reading of two: worth 0.5
    listed = forced_episode("a0", Action.MULTI_ANSWER, 0.9, words=20)
    asked = [forced_episode("a0", Action.CLARIFY, f1, questions=1, words=w) for f1, w in ((1.0, 2), (0.0, 4))]
    asked[1].intent = 1
    rows = realised([ambiguous, items["p0"]], [answer, listed, *asked])
    assert [r.item_id for r in rows] == ["a0"]  # p0 has no episodes yet: left out
    assert rows[0].values == pytest.approx((0.5, 0.9, 0.5, 3.0, 20.0, 3.0))


def test_decisions_pick_forced_episodes_on_the_same_replies():
    from askwise.policy.value import OUTPUTS
    from askwise.training.decisions import chosen_episodes, estimate_check, targets, value_choices

    items = four_ambiguous_four_plain()
    grid = [Costs(alpha=0.05, beta=0.002), Costs(alpha=0.5, beta=0.002)]

    def played(action, f1, **kw):
        episodes = []
        for cell in range(len(grid)):
            for i in items:
                e = forced_episode(i, action, f1(i), **kw)
                e.sample = cell
                episodes.append(e)
        return episodes

    forced = {"always-answer": played(Action.ANSWER, lambda i: 1.0 if i[0] == "p" else 0.5),
              "always-clarify": played(Action.CLARIFY, lambda i: 1.0, questions=1),
              "always-multi": played(Action.MULTI_ANSWER, lambda i: 0.9, words=12)}
    # the head knows: a question wins 0.5 on an ambiguous item, nothing on a plain one
    estimates = {i: [1.0 if i[0] == "p" else 0.5, 0.9, 1.0, 2.0, 12.0, 2.0] for i in items}
    assert len(OUTPUTS) == len(estimates["a0"])
    choices = value_choices(estimates, grid, max_questions=1)
    assert {i: a for (cell, i), a in choices.items() if cell == 0} == {
        **{f"a{k}": Action.CLARIFY for k in range(4)}, **{f"p{k}": Action.ANSWER for k in range(4)}}
    # at alpha 0.5 a question costs more than it wins; the list (0.9 - 0.024) beats a guess (0.5 - 0.004)
    assert {a for (cell, i), a in choices.items() if cell == 1 and i[0] == "a"} == {Action.MULTI_ANSWER}
    chosen = chosen_episodes(forced, choices)
    assert len(chosen) == 16 and all(e.forced == choices[(e.sample, e.item_id)].value for e in chosen)
    check = estimate_check(forced, estimates, items, 0)
    assert check["answer"] == {"predicted_f1": 0.75, "realised_f1": 0.75, "predicted_words": 2.0,
                               "realised_words": 2.0}
    cells = [{"alpha": c.alpha, "beta": c.beta, "policy": {"clarify_rate": r, "multi_rate": m, "reward": 0.9},
              "best_fixed": {"diff": d, "se": 0.01}, "readings_rule": {"reward": 0.85},
              "decisions": {"policy's tag": {"diff": d, "se": 0.01}},
              "estimates": {"answer": {"predicted_f1": 0.7, "realised_f1": 0.8}}}
             for c, r, m, d in zip(grid, (0.5, 0.0), (0.0, 0.5), (0.05, -0.02))]
    result = targets(cells)
    assert result["against"]["policy's tag"] == {"ahead": 1, "ahead_by_2se": 1, "behind_by_2se": 0}
    assert result["never_behind_best_fixed"] == 1 and result["ahead_of_best_fixed_by_2se"] == 1
    assert result["at_least_readings_rule"] == 2 and result["largest_clarify_rise_with_alpha"] == -0.5
    assert result["estimates_within_tolerance"] == 0 and result["largest_estimate_error"] == pytest.approx(0.1)


def test_a_tagged_episode_records_what_the_policy_would_have_chosen_beside_what_was_forced():
    from dataclasses import replace as with_fields

    from askwise.training.decisions import policy_choices

    [episode], engine = play([with_fields(spec(Action.ANSWER), tags=True)])
    assert episode.first_action is Action.ANSWER  # the forced reply is what the episode plays
    assert episode.extra["tag"] == "clarify"  # this engine asks whenever it may
    # the tag's request allowed every action and shared the forced request's prompt
    assert engine.prompts[0] == engine.prompts[1] and len(engine.prompts) == 2
    assert policy_choices([episode]) == {(0, ITEM.id): Action.CLARIFY}
    [untagged], _ = play([spec(Action.ANSWER)])
    assert "tag" not in untagged.extra
    with pytest.raises(ValueError, match="no tag"):
        policy_choices([untagged])


class OptionsAssistant(RuleAssistant):
    """RuleAssistant whose question offers the two readings as options."""

    async def complete(self, messages, params: SamplingParams, model=None) -> Completion:
        completion = await super().complete(messages, params, model)
        if completion.text.startswith("#CLARIFY"):
            return Completion("#CLARIFY Do you mean as a short or as a series?", 10, 9, "stop")
        return completion


def test_a_list_from_the_readings_answers_each_option_as_after_the_question():
    engine = OptionsAssistant()
    [episode] = asyncio.run(play_episodes(engine, ReferenceSimulator(), [spec(Action.MULTI_ANSWER)],
                                          SamplingParams(), 1, lists="readings"))
    assert episode.turns[1]["content"] == ("as a short: April 19, 1987\n"
                                           "as a series: December 17, 1989")
    assert episode.extra["list_from"] == "Do you mean as a short or as a series?"
    assert episode.final == "December 17, 1989" and episode.f1 == 1.0
    assert episode.words == 12 and episode.f1_by_intent == [1.0, 1.0]
    assert episode.engine_tokens == 9 + 5 + 5  # the question and two lines: no own list is written


def test_a_forced_list_is_built_from_the_question_the_cell_already_asked():
    from dataclasses import replace as with_fields

    from askwise.training.episodes import with_questions
    from askwise.training.evaluate import played_in_order

    engine = OptionsAssistant()
    [asked] = asyncio.run(play_episodes(engine, ReferenceSimulator(), [spec(Action.CLARIFY)],
                                        SamplingParams(), 1, lists="readings"))
    runs = {"always-answer": [spec(Action.ANSWER)], "always-multi": [spec(Action.MULTI_ANSWER)],
            "always-clarify": [spec(Action.CLARIFY)]}
    assert [n for n, _ in played_in_order(runs, "readings")] == ["always-answer", "always-clarify",
                                                                 "always-multi"]
    assert list(dict(played_in_order(runs, "model"))) == list(runs)
    [listed] = with_questions(runs["always-multi"], [asked])
    assert listed.question == "Do you mean as a short or as a series?"
    engine.prompts.clear()
    [episode] = asyncio.run(play_episodes(engine, ReferenceSimulator(), [listed], SamplingParams(), 1,
                                          lists="readings"))
    assert episode.turns[1]["content"] == ("as a short: April 19, 1987\n"
                                           "as a series: December 17, 1989")
    assert len(engine.prompts) == 2 and episode.engine_tokens == 5 + 5  # the two lines only
    # a cell whose question was not asked (other costs) asks its own
    [other] = with_questions([with_fields(spec(Action.MULTI_ANSWER), costs=Costs(alpha=0.2, beta=0.01))],
                             [asked])
    assert other.question is None


def test_the_value_stage_builds_each_list_from_its_items_question(tmp_path, monkeypatch):
    from askwise.training import rest
    from askwise.training.config import TrainConfig
    from askwise.training.episodes import load_episodes
    from askwise.training.value import value_specs

    engine, played = OptionsAssistant(), []

    async def play(config, base, adapter, specs, params, out, desc, log_dir):
        played.append(sorted({s.forced.value for s in specs}))
        return await play_episodes(engine, ReferenceSimulator(), specs, params, 1, out=out, lists=config.lists)

    monkeypatch.setattr(rest, "play", play)
    config = TrainConfig(output_dir=tmp_path, lists="readings")
    specs = value_specs([ITEM], [Costs(alpha=0.1, beta=0.01)], 0)
    asyncio.run(rest.play_value(config, None, None, specs, SamplingParams(), tmp_path))
    assert played == [["answer", "clarify"], ["multi_answer"]]
    [listed] = [e for e in load_episodes(tmp_path / "episodes.jsonl") if e.forced == "multi_answer"]
    assert listed.extra["list_from"] == "Do you mean as a short or as a series?"
    assert listed.engine_tokens == 5 + 5  # the lines: the question was the clarify episodes'
    assert len(engine.prompts) == 1 + 2 * 2 + 2  # answer, two questions with follow-ups, two lines


def test_list_quality_reads_whether_labels_tell_the_readings_apart():
    from askwise.training.quality import list_against_follow_up, list_quality

    def listed(sample, lines, f1=1.0):
        content = "\n".join(f"{label}: {answer}" for label, answer in lines)
        return Episode(item_id=ITEM.id, sample=sample, intent=1, alpha=0.1, beta=0.01, forced="multi_answer",
                       turns=[{"role": "user", "content": ITEM.query, "action": None},
                              {"role": "assistant", "content": content, "action": "multi_answer"}],
                       final="x", f1=f1, questions=0, words=4, well_formed=True)

    good = listed(0, [("as a short", "April 19, 1987"), ("as a series", "December 17, 1989")])
    alike = listed(1, [("the show", "1987"), ("the show", "1989")], f1=0.0)
    quality = list_quality([good, alike], {ITEM.id: ITEM})
    assert quality["ambiguous_lists"] == 2 and quality["mean_lines"] == 2
    assert quality["lines_naming_a_reading"] == 0.5  # the second list's labels name nothing
    assert quality["lists_with_duplicate_labels"] == 0.5
    assert quality["readings_covered"] == 0.5

    asked = Episode(item_id=ITEM.id, sample=0, intent=1, alpha=0.1, beta=0.01, forced="clarify",
                    turns=[{"role": "user", "content": ITEM.query, "action": None},
                           {"role": "assistant", "content": "Do you mean as a short or as a series?",
                            "action": "clarify"},
                           {"role": "user", "content": "series", "action": None},
                           {"role": "assistant", "content": "December 17, 1989", "action": "answer"}],
                    final="December 17, 1989", f1=0.8, questions=1, words=3, well_formed=True)
    versus = list_against_follow_up([good, alike], [asked], {ITEM.id: ITEM})
    assert versus["pairs"] == 1 and versus["ratio"] == pytest.approx(1.0 / 0.8)
