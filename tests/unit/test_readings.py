"""Readings first: a question's options, a reply matched to one, a list built from them."""

import asyncio

import pytest

from askwise.policy import Action, Costs, Document, Turn, parse_action
from askwise.policy.engines.base import Completion, SamplingParams
from askwise.policy.readings import (
    compose_list,
    is_positional,
    match_option,
    question_readings,
)


@pytest.mark.parametrize("question, options", [
    ("Do you mean the 2014 tournament or the 2018 tournament?", ["the 2014 tournament", "the 2018 tournament"]),
    ("Are you asking about the film, the novel or the song?", ["the film", "the novel", "the song"]),
    ("Which one do you mean: Sydney or Glenorchy?", ["Sydney", "Glenorchy"]),
])
def test_a_question_offers_its_options(question, options):
    assert question_readings(question) == options


@pytest.mark.parametrize("question", [
    "What do you mean?",                                  # offers nothing
    "Do you mean in the heart or in the heart?",          # the same option twice
    "Do you mean 1975, 1976, 1977, 1978 or 1979?",        # more than a person parses
    "Do you mean the 2014 tournament or the 2018 tournament",  # not a question
])
def test_a_question_nobody_can_choose_from_offers_no_options(question):
    assert question_readings(question) == []


OPTIONS = ["the 2014 tournament", "the 2018 tournament", "the women's cup"]


@pytest.mark.parametrize("reply, index", [
    ("the second one", 1), ("2", 1), ("Second.", 1), ("the first", 0), ("b", 1),
    ("the last one", 2), ("third option", 2),
    ("2018", 1), ("I mean the 2018 one", 1), ("women's", 2), ("the 2014 tournament", 0),
])
def test_a_reply_resolves_to_the_option_it_picks(reply, index):
    assert match_option(reply, OPTIONS) == index


@pytest.mark.parametrize("reply", ["the tournament", "neither", "fifth", "", "I mean what I asked"])
def test_a_reply_that_picks_none_or_two_resolves_to_none(reply):
    assert match_option(reply, OPTIONS) is None


def test_only_a_position_needs_the_question_to_be_read():
    assert is_positional("the second one", OPTIONS) and is_positional("2", OPTIONS)
    assert not is_positional("2018", OPTIONS) and not is_positional("the 2014 tournament", OPTIONS)


class Policy:
    """A scripted policy: asks `question` when made to ask, and answers a follow-up by the
    user's last words; records each request's prompt and limits."""

    def __init__(self, question, answers):
        self.question, self.answers, self.requests = question, answers, []

    async def complete(self, messages, params, model=None):
        self.requests.append((messages, params))
        if params.allowed_prefixes == ("#CLARIFY ",):
            return Completion(f"#CLARIFY {self.question}", 40, 9, "stop")
        said = next(m["content"] for m in reversed(messages) if m["role"] == "user")
        reply = next((a for key, a in self.answers.items() if key in said), "I do not know")
        return Completion(f"#ANSWER {reply}", 50, 3, "stop")


def compose(policy, **kwargs):
    return asyncio.run(compose_list(policy, [Turn("user", "Who won the cup?")],
                                    [Document("The 2014 cup went to Germany. The 2018 cup went to France.")],
                                    Costs(alpha=0.1, beta=0.002), SamplingParams(max_tokens=200), **kwargs))


def test_a_list_answers_each_option_as_after_the_question():
    policy = Policy("Do you mean the 2014 cup or the 2018 cup?",
                    {"the 2014 cup": "Germany", "the 2018 cup": "France"})
    composed = compose(policy)
    assert composed.question == "Do you mean the 2014 cup or the 2018 cup?"
    assert composed.parsed.action is Action.MULTI_ANSWER and composed.parsed.well_formed
    assert [(r.interpretation, r.answer) for r in composed.parsed.interpretations] == [
        ("the 2014 cup", "Germany"), ("the 2018 cup", "France")]
    assert composed.parsed.message == "the 2014 cup: Germany\nthe 2018 cup: France"
    assert composed.completion_tokens == 9 + 3 + 3
    # each line is a follow-up: the question, then the option as the user's reply, forced to answer
    follow_ups = policy.requests[1:]
    assert all(p.allowed_prefixes == ("#ANSWER ",) and p.max_tokens <= 48 for _, p in follow_ups)
    assert [[t["content"] for t in m[1:-1]] for m, _ in follow_ups] == [
        ["Who won the cup?", "#CLARIFY Do you mean the 2014 cup or the 2018 cup?", option]
        for option in ("the 2014 cup", "the 2018 cup")]


def test_the_short_form_parses_back_to_the_same_lines():
    policy = Policy("Do you mean the 2014 cup or the 2018 cup?", {"2014": "Germany", "2018": "France"})
    composed = compose(policy)
    reparsed = parse_action("#MULTI_ANS\n" + composed.parsed.message)
    assert reparsed.well_formed and reparsed.interpretations == composed.parsed.interpretations


def test_a_question_without_options_leaves_the_policy_its_own_list():
    assert compose(Policy("Can you be more specific?", {})) is None


def test_a_positional_reply_reaches_the_policy_as_the_option_it_picks():
    from askwise.policy.readings import resolve_positions
    asked = [Turn("user", "Who won the cup?"),
             Turn("assistant", "Do you mean the 2014 cup or the 2018 cup?")]  # as clients send it back
    assert resolve_positions(asked + [Turn("user", "the second one")])[-1].content == "the 2018 cup"
    assert resolve_positions(asked + [Turn("user", "2018")])[-1].content == "2018"  # words stay
    answered = [Turn("user", "Who won the cup?"), Turn("assistant", "Germany won it."),
                Turn("user", "the second one")]
    assert resolve_positions(answered) == answered  # no question, nothing to pick from
