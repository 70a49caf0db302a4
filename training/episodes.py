"""Self-play episodes: the assistant and the user simulator talk until a final answer.

One episode: the environment has drawn the user's intent (an interpretation of the item).
The assistant sees only the query, the documents and the costs (`render_prompt`, the same
function the server uses) and takes one action per turn. After `#CLARIFY` the simulator, which
knows the intent, replies and the assistant acts again; after `max_questions` questions only
the final actions are allowed. `#ANSWER` ends with its message as the final answer;
`#MULTI_ANS` ends with the answer the simulator picks from the list. The episode records F1 of
that answer against the intent's gold answers, the number of questions and the number of words
of the final assistant message: enough to score it under any costs afterwards.

When the first turn is final, the assistant's reply cannot depend on the intent (it never saw
any user input), so the episode is also scored against every interpretation (`f1_by_intent`).
The improve step uses that expectation instead of one draw: an `#ANSWER` that was right by
luck does not look better than it is.

`run_episodes` runs many episodes concurrently (engines batch concurrent requests), appends
each finished episode to a JSONL file and skips the ones already there, so a stopped run
resumes where it was.
"""

from __future__ import annotations

import asyncio
import gzip
import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from tqdm.auto import tqdm

from askwise.policy import (
    ACTION_STOP,
    Action,
    Costs,
    Outcome,
    Turn,
    action_prefixes,
    allowed_actions,
    best_f1,
    count_words,
    format_action,
    parse_action,
    render_prompt,
)
from askwise.policy.engines.base import Engine, EngineError, EngineRejected, SamplingParams
from askwise.policy.questions import Sources, grade, needs_redraw, redraw_question
from askwise.policy.readings import compose_list

from .data import Item, item_rng
from .simulator import UserSimulator


@dataclass(frozen=True)
class EpisodeSpec:
    """What to play: the item, which sample this is, the intent, costs and forced first action.
    With `tags`, the first turn also records the action the policy's own reply would start
    with there, and its probability of each (`Episode.extra["tag"]`, `["tags"]`), from a
    short request with every action allowed, sent just before the forced one so that both
    share the prompt's cached prefix. `question`: a forced list built from the readings is
    built from this question (the policy's own in the same cell, played already) instead of
    asking it again; the episode's tokens are then the lines'."""

    item: Item
    sample: int
    intent: int
    costs: Costs
    forced: Action | None = None
    seed: int | None = None
    tags: bool = False
    question: str | None = None

    @property
    def key(self) -> str:
        return f"{self.item.id}/{self.sample}"


@dataclass
class Episode:
    item_id: str
    sample: int
    intent: int
    alpha: float  # the costs written in the prompt while playing
    beta: float
    forced: str | None
    turns: list[dict]  # {"role", "content", "action"}: the assistant's content is its message
    final: str  # the answer that F1 scored
    f1: float
    questions: int
    words: int
    well_formed: bool
    f1_by_intent: list[float] | None = None
    engine_tokens: int = 0
    extra: dict = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.item_id}/{self.sample}"

    @property
    def first_action(self) -> Action:
        return Action(next(t["action"] for t in self.turns if t["role"] == "assistant"))

    @property
    def final_action(self) -> Action:
        return Action([t["action"] for t in self.turns if t["role"] == "assistant"][-1])

    def expected_f1(self, item: Item) -> float:
        """F1 in expectation over the intent where the reply could not depend on it."""
        if self.f1_by_intent is None:
            return self.f1
        return sum(r.probability * f for r, f in zip(item.interpretations, self.f1_by_intent))

    def outcome(self, item: Item | None = None) -> Outcome:
        f1 = self.f1 if item is None else self.expected_f1(item)
        return Outcome(f1=f1, questions=self.questions, words=self.words)

    def conversation(self) -> list[Turn]:
        return [Turn(t["role"], t["content"], Action(t["action"]) if t["action"] else None)
                for t in self.turns]

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)

    @classmethod
    def from_json(cls, line: str) -> Episode:
        return cls(**json.loads(line))


async def _final_answer(simulator: UserSimulator, item: Item, intent: int, parsed) -> str:
    if parsed.action is Action.MULTI_ANSWER:
        return await simulator.pick(item, intent, parsed.interpretations, parsed.message)
    return parsed.message


# Enough tokens to read which tag a reply starts with ("#MULTI_ANS\nIf you mean" is 7).
TAG_TOKENS = 8


async def _tag(engine: Engine, messages, params: SamplingParams, actions: tuple[Action, ...],
               model: str | None) -> dict:
    """The action the policy's greedy reply starts with when `actions` are allowed, and its
    probability of each (where the engine reports them)."""
    completion = await engine.complete(messages, replace(
        params, allowed_prefixes=action_prefixes(actions), max_tokens=TAG_TOKENS, temperature=0.0,
        prefix_probabilities=True), model)
    parsed = parse_action(completion.text)
    by_prefix = completion.prefix_probabilities or {}
    return {"tag": parsed.action.value if parsed.tagged else None,
            "tags": {a.value: by_prefix.get(p, 0.0) for a, p in zip(actions, action_prefixes(actions))}
            if by_prefix else None}


async def run_episode(engine: Engine, simulator: UserSimulator, spec: EpisodeSpec,
                      params: SamplingParams, max_questions: int = 1,
                      model: str | None = None, redraws: int = 0, lists: str = "model") -> Episode:
    """Play one episode. `lists="readings"` builds an opening multi-answer from the readings
    (policy/readings.py) as `askwise serve --lists readings` does."""
    item, intent = spec.item, spec.intent
    turns: list[Turn] = [Turn("user", item.query)]
    questions, tokens, well_formed = 0, 0, True
    extra: dict = {}
    while True:
        open_actions = allowed_actions(turns, max_questions)
        allowed = (spec.forced,) if spec.forced is not None and questions == 0 else open_actions
        seed = None if spec.seed is None else spec.seed + 7919 * questions
        turn_params = replace(params, allowed_prefixes=action_prefixes(allowed), stop=ACTION_STOP,
                              seed=seed)
        messages = render_prompt(turns, spec.costs, item.documents, max_questions)
        if spec.tags and not any(t.role == "assistant" for t in turns):
            extra.update(await _tag(engine, messages, turn_params, open_actions, model))
        opening_list = lists == "readings" and questions == 0
        composed = None
        if opening_list and allowed == (Action.MULTI_ANSWER,):
            # A forced list is built from the readings before the policy writes its own,
            # which would only be thrown away; its own stays where the question offers none.
            composed = await compose_list(engine, turns, item.documents, spec.costs, turn_params,
                                          model, max_questions, redraws, question=spec.question)
        if composed is not None:
            tokens += composed.completion_tokens
            extra["list_from"] = composed.question
            parsed = composed.parsed
            opening_list = False
        else:
            completion = await engine.complete(messages, turn_params, model)
            tokens += completion.completion_tokens
            parsed = parse_action(completion.text)
        sources = Sources.of(turns, item.documents)
        if (composed is None and redraws and Action.CLARIFY in allowed
                and needs_redraw(parsed, completion, sources)):
            redraw = await redraw_question(engine, messages, turn_params, model, redraws, sources,
                                           grade(parsed, completion, sources))
            tokens += redraw.completion_tokens
            extra.setdefault("redrawn", []).append(
                {"question": parsed.message, "replaced": redraw.parsed is not None})
            parsed = redraw.parsed or parsed
        well_formed = well_formed and parsed.well_formed
        action = parsed.action
        if action not in allowed:
            # A backend that ignores the prefix constraint: the reply still ends the turn the
            # way the allowed final action would, so nothing the model said is lost.
            action = Action.ANSWER if Action.ANSWER in allowed else allowed[0]
            well_formed = False
        if action is Action.MULTI_ANSWER and opening_list and allowed != (Action.MULTI_ANSWER,):
            composed = await compose_list(engine, turns, item.documents, spec.costs, turn_params,
                                          model, max_questions, redraws)
            if composed is not None:
                tokens += composed.completion_tokens
                extra["list_from"] = composed.question
                parsed = composed.parsed
        turns.append(Turn("assistant", parsed.message, action))
        if action is Action.CLARIFY:
            questions += 1
            turns.append(Turn("user", await simulator.reply(item, intent, parsed.message)))
            continue
        parsed = replace(parsed, action=action)
        final = await _final_answer(simulator, item, intent, parsed)
        f1_by_intent = None
        if questions == 0:
            f1_by_intent = [
                best_f1(await _final_answer(simulator, item, j, parsed), reading.answers)
                for j, reading in enumerate(item.interpretations)]
        return Episode(
            item_id=item.id, sample=spec.sample, intent=intent, alpha=spec.costs.alpha,
            beta=spec.costs.beta, forced=spec.forced.value if spec.forced else None,
            turns=[{"role": t.role, "content": t.content, "action": t.action.value if t.action else None}
                   for t in turns],
            final=final, f1=best_f1(final, item.interpretations[intent].answers),
            questions=questions, words=count_words(parsed.message), well_formed=well_formed,
            f1_by_intent=f1_by_intent, engine_tokens=tokens, extra=extra)


def with_questions(specs: list[EpisodeSpec], asked: list[Episode]) -> list[EpisodeSpec]:
    """Forced lists built from the readings, given the question the policy asked on the same
    item at the same costs in `asked` (its forced clarify episodes). For greedy play, where
    asking again would repeat the same request; sampled play draws its own."""
    questions = {(e.item_id, e.alpha, e.beta): e.turns[1]["content"] for e in asked
                 if len(e.turns) > 1 and e.turns[1]["action"] == Action.CLARIFY.value}
    return [replace(s, question=questions.get((s.item.id, s.costs.alpha, s.costs.beta))) for s in specs]


def assistant_examples(episode: Episode, costs: Costs, documents, max_questions: int
                       ) -> list[tuple[list[dict[str, str]], str]]:
    """(prompt messages, target reply) for each assistant turn, prompted with `costs`.

    The reply is the canonical text of the action (`format_action`), so training targets are
    well-formed even when the sampled text had a stray lead-in.
    """
    turns = episode.conversation()
    examples = []
    for k, turn in enumerate(turns):
        if turn.role == "assistant":
            messages = render_prompt(turns[:k], costs, documents, max_questions)
            examples.append((messages, format_action(turn.action, turn.content)))
    return examples


def load_episodes(path: Path) -> list[Episode]:
    """Episodes from a JSONL file, or a gzipped one (`.gz`, as reports commit them)."""
    if not path.exists():
        return []
    episodes = []
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line:
                try:
                    episodes.append(Episode.from_json(line))
                except (json.JSONDecodeError, TypeError):
                    continue  # a line cut short by a crash: that episode is played again
    return episodes


def _drop_partial_line(path: Path) -> None:
    """Cut a last line that a crash left without its newline, so that the episodes appended
    after a resume start on lines of their own instead of being glued to it and lost."""
    if not path.exists():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        with open(path, "r+b") as f:
            f.truncate(data.rfind(b"\n") + 1)


async def _run_all(engine, simulator, specs, params, max_questions, model, concurrency, out, desc,
                   redraws, lists):
    done = {e.key: e for e in load_episodes(out)} if out else {}
    todo = [s for s in specs if s.key not in done]
    gate = asyncio.Semaphore(concurrency)
    if out:
        _drop_partial_line(out)
    sink = open(out, "a", encoding="utf-8") if out else None

    failures: list[str] = []
    broken = 0  # failures that were not the request's own fault

    async def play(spec: EpisodeSpec) -> Episode | None:
        nonlocal broken
        async with gate:
            try:
                return await run_episode(engine, simulator, spec, params, max_questions, model,
                                         redraws, lists)
            except EngineError as exc:
                # One bad request (say, a prompt over the context length) must not end the
                # run; the episode is not recorded, so a rerun tries it again.
                failures.append(f"{spec.key}: {exc}")
                broken += not isinstance(exc, EngineRejected)
                return None

    try:
        with tqdm(total=len(specs), initial=len(specs) - len(todo), desc=desc, unit="ep") as bar:
            for next_done in asyncio.as_completed([play(s) for s in todo]):
                episode = await next_done
                bar.update()
                if episode is None:
                    continue
                done[episode.key] = episode
                if sink:
                    sink.write(episode.to_json() + "\n")
                    sink.flush()
    finally:
        if sink:
            sink.close()
    if failures:
        message = f"{desc}: {len(failures)} of {len(todo)} episodes failed, e.g. {failures[0]}"
        if broken > len(todo) // 2:
            raise RuntimeError(message + "; the engine looks broken, so the run stops here")
        print(message + "; they were skipped and a rerun plays them again")
    return [done[s.key] for s in specs if s.key in done]


async def play_episodes(engine: Engine, simulator: UserSimulator, specs: list[EpisodeSpec],
                        params: SamplingParams, max_questions: int = 1, model: str | None = None,
                        concurrency: int = 32, out: Path | None = None, desc: str = "episodes",
                        redraws: int = 0, lists: str = "model") -> list[Episode]:
    """Play `specs` concurrently; with `out`, resume from and append to that JSONL file.
    With `redraws`, a question nobody can answer is drawn again (`policy.questions`); with
    `lists="readings"`, an opening list is built from the readings (`policy.readings`)."""
    return await _run_all(engine, simulator, specs, params, max_questions, model, concurrency,
                          out, desc, redraws, lists)


def spec_seed(seed: int, *keys: object) -> int:
    return item_rng(seed, "sampling", *keys).randrange(2**31)
