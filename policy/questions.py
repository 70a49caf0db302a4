"""Clarifying questions a person can answer: the options a question offers, and a redraw
when they repeat or never end.

A small policy decoding greedily sometimes offers one option twice ("Do you mean in the
heart or in the heart?") or enumerates until its token limit cuts it off ("1985, 1995, 1995,
..."). Nobody can answer that. The check reads only the question's own text and how its
decoding ended (no gold data, no documents), so the server and the self-play game apply the
same one; `redraw_question` then samples the question again with the action kept, and the
first draw that is whole and whose options differ is asked. When no draw is, the original
question stands.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, replace

from .actions import ACTION_PREFIXES, Action, ParsedAction, action_regex, parse_action
from .engines.base import ChatMessages, Completion, Engine, SamplingParams
from .reward import normalize_answer

# Sampled like the self-play rollouts: varied enough to leave a loop, close to the policy.
REDRAW_TEMPERATURE = 0.3
DEFAULT_REDRAWS = 8

# "Do you mean ...", "Are you asking about ...", "Is it ...": the frame before the options.
_FRAME = re.compile(
    r"^\s*(?:(?:do|did|are|were|would|could|can)\s+you\s+(?:mean|asking\s+about|referring\s+to"
    r"|talking\s+about|looking\s+for|want)|(?:is|was)\s+it|which\s+(?:one\s+)?do\s+you\s+mean)"
    r"\b[\s:,]*", re.IGNORECASE)
_OR = re.compile(r"\s*,?\s+or\s+", re.IGNORECASE)
_COMMA = re.compile(r"\s*[,;]\s*")
# Words that do not tell two options apart ("in the heart" and "the heart" are one option).
_LIGHT = frozenset("the a an of in on at to for by from with and as".split())


def _key(option: str) -> frozenset[str]:
    return frozenset(w for w in normalize_answer(option).split() if w not in _LIGHT)


def _repeats(options: list[str]) -> bool:
    keys = [_key(o) for o in options if o.strip()]
    return len(keys) > 1 and (not all(keys) or len(set(keys)) < len(keys))


def question_options(question: str) -> list[list[str]]:
    """Two readings of the options `question` offers: split at "or" only (so "October 2,
    1975" stays whole), and with the commas of an "A, B or C" list split as well."""
    body = _FRAME.sub("", question.strip().rstrip("?.! "), count=1)
    by_or = _OR.split(body)
    listed = [part for segment in by_or[:-1] for part in _COMMA.split(segment)] + by_or[-1:]
    if len(by_or) == 1:
        listed = _COMMA.split(body)
    return [by_or, listed]


def options_repeat(question: str) -> bool:
    """Whether `question` offers the same option twice, under either way of splitting it."""
    return any(_repeats(options) for options in question_options(question))


def askable(parsed: ParsedAction, completion: Completion) -> bool:
    """A question a person can answer: it ended by itself and offers no option twice."""
    return (parsed.action is Action.CLARIFY and bool(parsed.message)
            and completion.finish_reason != "length" and not options_repeat(parsed.message))


def needs_redraw(parsed: ParsedAction, completion: Completion) -> bool:
    return parsed.action is Action.CLARIFY and not askable(parsed, completion)


@dataclass(frozen=True)
class Redraw:
    """What a redraw gave: the question to ask (None when every draw repeated too), and the
    tokens all draws cost."""

    parsed: ParsedAction | None
    completion: Completion | None
    completion_tokens: int


async def redraw_question(engine: Engine, messages: ChatMessages, params: SamplingParams,
                          model: str | None = None, draws: int = DEFAULT_REDRAWS) -> Redraw:
    """Sample `draws` clarifying questions for `messages` at once and keep the first, in draw
    order, that is `askable`. Each draw has a seed of its own when `params` has one, so a
    seeded request stays reproducible.

    The draws after the chosen one are cancelled rather than awaited: a draw that loops runs
    to the token limit, and the request need not wait for it. Their tokens, never finished,
    are not counted."""
    base = replace(params, temperature=REDRAW_TEMPERATURE, top_p=1.0,
                   allowed_prefixes=(ACTION_PREFIXES[Action.CLARIFY],),
                   regex=action_regex((Action.CLARIFY,)) if params.regex else None,
                   prefix_probabilities=False)
    seeds = [None if params.seed is None else params.seed + 104729 * (k + 1) for k in range(draws)]
    tasks = [asyncio.ensure_future(engine.complete(messages, replace(base, seed=s), model))
             for s in seeds]
    tokens = 0
    try:
        for task in tasks:
            completion = await task
            tokens += completion.completion_tokens
            parsed = parse_action(completion.text)
            if askable(parsed, completion):
                return Redraw(parsed, completion, tokens)
        return Redraw(None, None, tokens)
    finally:
        for task in tasks:
            task.cancel()
        # Let each cancelled draw unwind (an engine frees its slot) before the reply goes out.
        await asyncio.gather(*tasks, return_exceptions=True)
