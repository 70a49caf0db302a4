"""Clarifying questions a person can answer: the options a question offers, and a redraw
when they repeat, never end, or do not come from what was retrieved.

A small policy decoding greedily sometimes offers one option twice ("Do you mean in the
heart or in the heart?") or enumerates until its token limit cuts it off ("1985, 1995, 1995,
..."). Nobody can answer that. It also offers options that are not the readings the
documents hold ("Do you mean network or the Federal Reserve?" when the passages about the
query tell two seasons apart). With documents, `Sources.grounded` counts the options found
each in a different passage sentence about the query; a question grounds two when it names
two things the retrieved passages tell apart.

The checks read only what the request holds (the question, how its decoding ended, the
query and the documents; no gold data), so the server and the self-play game apply the same
ones. `redraw_question` samples the question again with the action kept and asks the first
draw that is whole, offers distinct options and grounds two of them; when none does, the
draw that grounds the most options, if it grounds more than the question in hand. Otherwise
the original question stands.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cached_property

from .actions import ACTION_PREFIXES, Action, ParsedAction, action_regex, parse_action
from .engines.base import ChatMessages, Completion, Engine, SamplingParams
from .prompt import Document, Turn
from .reward import content_words, count_words, normalize_answer

# Sampled like the self-play rollouts: varied enough to leave a loop, close to the policy.
REDRAW_TEMPERATURE = 0.3
DEFAULT_REDRAWS = 8
# A draw that loops runs to its token limit, and when no draw passes the request waits for
# all of them. No question a redraw asked on dev-selection was longer than 88 tokens, tag
# included, so a draw past this many is one nobody would be asked.
REDRAW_MAX_TOKENS = 96

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


# A question a person reads to the end and answers: at most this many options and words, and
# a question at all. One that recites every document names its readings only in the sense
# that a reader could dig them out, which nobody does (DESIGN.md, "the game").
MAX_OPTIONS = 4
MAX_QUESTION_WORDS = 30


def readable(question: str) -> bool:
    """Whether a person would read `question` as a question to answer: it ends with "?",
    runs to at most `MAX_QUESTION_WORDS` words and offers at most `MAX_OPTIONS` options
    (counted as "A, B or C" lists them, the larger of the two splits)."""
    text = question.strip()
    options = max(len([o for o in split if o.strip()]) for split in question_options(text))
    return text.endswith("?") and count_words(text) <= MAX_QUESTION_WORDS and options <= MAX_OPTIONS


def options_repeat(question: str) -> bool:
    """Whether `question` offers the same option twice, under either way of splitting it."""
    return any(_repeats(options) for options in question_options(question))


# A passage's sentences end at . ! or ? before a capital, a digit or a quote ("U.S. history"
# stays whole often enough; a split there only costs a match).
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'])")
# A sentence is about the query when it shares this many of the query's content words (all of
# them, for a query with fewer). Chosen on dev-selection: 1, 2 and 3 ground about equally.
ABOUT_QUERY_WORDS = 2
# Options grounded in different sentences that make a question name what the passages tell
# apart: two, one per reading at least.
GROUNDED_OPTIONS = 2
# Words a question wraps its options in, which name nothing.
_FRAME_WORDS = frozenset("you your mean i me my not no".split())


def _matching(candidates: list[set[int]]) -> int:
    """The most options that can each have a sentence of its own (augmenting paths)."""
    owner: dict[int, int] = {}

    def place(option: int, seen: set[int]) -> bool:
        for sentence in candidates[option]:
            if sentence not in seen:
                seen.add(sentence)
                if sentence not in owner or place(owner[sentence], seen):
                    owner[sentence] = option
                    return True
        return False

    return sum(place(option, set()) for option in range(len(candidates)))


@dataclass(frozen=True)
class Sources:
    """What a request retrieved: the user's words so far and the documents."""

    query: str
    documents: Sequence[Document] = ()

    @classmethod
    def of(cls, turns: Sequence[Turn], documents: Sequence[Document]) -> Sources:
        """A conversation's sources: every user turn counts as query (an option must add to
        what the user already said)."""
        return cls(" ".join(t.content for t in turns if t.role == "user"), tuple(documents))

    @cached_property
    def _query_words(self) -> frozenset[str]:
        return frozenset(content_words(self.query))

    @cached_property
    def topic_sentences(self) -> tuple[frozenset[str], ...]:
        """The content words of each document sentence about the query."""
        wanted = self._query_words
        need = min(ABOUT_QUERY_WORDS, len(wanted))
        sentences = (frozenset(content_words(s)) for d in self.documents for s in _SENTENCE.split(d.text))
        return tuple(s for s in sentences if need and len(s & wanted) >= need)

    @property
    def groundable(self) -> bool:
        """Whether the passages hold two sentences about the query for options to come from."""
        return len(self.topic_sentences) >= GROUNDED_OPTIONS

    def grounded(self, question: str) -> int:
        """How many of `question`'s options are each found in a sentence of their own about
        the query, by a word the query does not already say."""
        sentences = self.topic_sentences
        best = 0
        for options in question_options(question):
            candidates = []
            for option in options:
                words = content_words(option) - self._query_words - _FRAME_WORDS
                candidates.append({k for k, s in enumerate(sentences) if words & s})
            best = max(best, _matching(candidates))
        return best


def askable(parsed: ParsedAction, completion: Completion) -> bool:
    """A question a person can answer: it ended by itself and offers no option twice."""
    return (parsed.action is Action.CLARIFY and bool(parsed.message)
            and completion.finish_reason != "length" and not options_repeat(parsed.message))


def grade(parsed: ParsedAction, completion: Completion, sources: Sources | None = None) -> int:
    """-1 for a question nobody can answer, else the options it grounds in `sources`
    (`GROUNDED_OPTIONS` when there is nothing to ground in: it passes)."""
    if not askable(parsed, completion):
        return -1
    if sources is None or not sources.groundable:
        return GROUNDED_OPTIONS
    return min(sources.grounded(parsed.message), GROUNDED_OPTIONS)


def needs_redraw(parsed: ParsedAction, completion: Completion, sources: Sources | None = None) -> bool:
    return parsed.action is Action.CLARIFY and grade(parsed, completion, sources) < GROUNDED_OPTIONS


@dataclass(frozen=True)
class Redraw:
    """What a redraw gave: the question to ask (None when every draw repeated too), and the
    tokens all draws cost."""

    parsed: ParsedAction | None
    completion: Completion | None
    completion_tokens: int


def draw_params(params: SamplingParams, draw: int) -> SamplingParams:
    """How redraw number `draw` (0-based) samples a question for a request made with `params`:
    warmer, capped, made to ask, and seeded apart from the other draws when `params` is seeded."""
    return replace(params, temperature=REDRAW_TEMPERATURE, top_p=1.0,
                   max_tokens=min(params.max_tokens, REDRAW_MAX_TOKENS),
                   allowed_prefixes=(ACTION_PREFIXES[Action.CLARIFY],),
                   regex=action_regex((Action.CLARIFY,)) if params.regex else None,
                   prefix_probabilities=False, choice_prefixes=(), decision=None,
                   seed=None if params.seed is None else params.seed + 104729 * (draw + 1))


async def redraw_question(engine: Engine, messages: ChatMessages, params: SamplingParams,
                          model: str | None = None, draws: int = DEFAULT_REDRAWS,
                          sources: Sources | None = None, to_beat: int = -1) -> Redraw:
    """Sample `draws` clarifying questions for `messages` at once and keep the first, in draw
    order, that passes (`grade` reaches `GROUNDED_OPTIONS`); when none does, the first of
    the best graded, if its grade is above `to_beat` (the grade of the question in hand).
    Each draw has a seed of its own when `params` has one, so a seeded request stays
    reproducible.

    The draws after one that passes are cancelled rather than awaited: a draw that loops runs
    to the token limit, and the request need not wait for it. Their tokens, never finished,
    are not counted."""
    tasks = [asyncio.ensure_future(engine.complete(messages, draw_params(params, k), model))
             for k in range(draws)]
    tokens, best, best_grade = 0, None, to_beat
    try:
        for task in tasks:
            completion = await task
            tokens += completion.completion_tokens
            parsed = parse_action(completion.text)
            graded = grade(parsed, completion, sources)
            if graded >= GROUNDED_OPTIONS:
                return Redraw(parsed, completion, tokens)
            if graded > best_grade:
                best, best_grade = (parsed, completion), graded
        return Redraw(*(best or (None, None)), tokens)
    finally:
        for task in tasks:
            task.cancel()
        # Let each cancelled draw unwind (an engine frees its slot) before the reply goes out.
        await asyncio.gather(*tasks, return_exceptions=True)
