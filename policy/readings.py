"""Readings first: the options a clarifying question offers, a user's reply matched to one of
them, and a list built from them.

A question such as "Do you mean the 2014 tournament or the 2018 tournament?" names the
readings the policy sees. The same readings serve three uses:
- `question_readings` turns the question into its options ("the 2014 tournament", "the 2018
  tournament"), which responses carry so an app can show buttons and a voice client can say
  "say one of ...";
- `match_option` resolves a user's reply to one of them, by its words ("2018") or its
  position ("the second one");
- `compose_list` builds a multi-answer whose every line is the answer the policy gives once
  a user has picked that option: each line's reply is generated with the option as the user's
  answer to the question, all lines at once. A list is then as accurate as a question's
  follow-up and costs only its words ("the 2014 tournament: Germany").
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

from .actions import ACTION_PREFIXES, ACTION_STOP, Action, Interpretation, ParsedAction, parse_action
from .costs import Costs
from .engines.base import Engine, SamplingParams
from .prompt import Document, Turn, assistant_turn_text, render_prompt
from .questions import (
    MAX_OPTIONS,
    Sources,
    _repeats,
    grade,
    needs_redraw,
    options_repeat,
    question_options,
    readable,
    redraw_question,
)
from .reward import content_words, normalize_answer

MIN_OPTIONS = 2
# A list line answers one reading in short form; a follow-up answer runs to a sentence at
# most (the longest greedy follow-up on dev-selection is well under this many tokens).
LINE_MAX_TOKENS = 48
# Words around an option that carry nothing ("the one about", "I mean").
_REPLY_FILLER = frozenset("the a an one option number no yes i mean meant about please i'm im".split())
_ORDINALS = {
    "first": 0, "1st": 0, "1": 0, "one": 0, "former": 0,
    "second": 1, "2nd": 1, "2": 1, "two": 1,
    "third": 2, "3rd": 2, "3": 2, "three": 2,
    "fourth": 3, "4th": 3, "4": 3, "four": 3,
}
_LAST = frozenset({"last", "latter"})
_EDGE = " \t\"'.,;:!?"


def _clean(option: str) -> str:
    return re.sub(r"\s+", " ", option).strip(_EDGE)


def question_readings(question: str) -> list[str]:
    """The options `question` offers, when a person would read it as a choice: a readable
    question (`policy.questions.readable`) offering 2 to `MAX_OPTIONS` distinct options.
    Empty when it offers none ("What do you mean?") or the same option twice."""
    if not readable(question) or options_repeat(question):
        return []
    # "A, B or C" is more often a list of three than "A, B" or "C" (a place and its country
    # split wrongly, but two equal halves of a date repeat and fall back to the "or" split).
    by_or, listed = question_options(question)
    for options in (listed, by_or):
        cleaned = [o for o in (_clean(o) for o in options) if o]
        if MIN_OPTIONS <= len(cleaned) <= MAX_OPTIONS and not _repeats(cleaned):
            return cleaned
    return []


def _position(reply: str, count: int) -> int | None:
    words = [w for w in normalize_answer(reply).split() if w not in _REPLY_FILLER]
    if not reply.strip():
        return None
    # "2", "#2", "(b)" read as positions only when nothing else is said
    bare = reply.strip().strip(_EDGE + "#()").lower()
    if len(bare) == 1 and bare in "abcd" and ord(bare) - ord("a") < count:
        return ord(bare) - ord("a")
    if len(words) != 1:
        return None
    word = words[0]
    if word in _LAST:
        return count - 1
    index = _ORDINALS.get(word)
    return index if index is not None and index < count else None


def match_option(reply: str, options: Sequence[str]) -> int | None:
    """The option a user's `reply` picks: by position ("the second one", "2", "the last"), or
    by words (the one option sharing the most content words with the reply, when no other
    shares as many). None when the reply picks none, or two equally."""
    if not options:
        return None
    position = _position(reply, len(options))
    if position is not None:
        return position
    said = content_words(reply) - _REPLY_FILLER
    if not said:
        return None
    overlap = [len(said & content_words(option)) for option in options]
    best = max(overlap)
    if best == 0 or overlap.count(best) > 1:
        return None
    return overlap.index(best)


def is_positional(reply: str, options: Sequence[str]) -> bool:
    """Whether `reply` picks an option by position only ("the second one"): a reply the
    policy cannot read without the question, unlike one that says the option's words."""
    return _position(reply, len(options)) is not None


def resolve_positions(turns: list[Turn]) -> list[Turn]:
    """`turns` with a user reply that picks a question's option by position ("the second one")
    replaced by the option: the policy reads the words, not the question's layout. A reply
    that says the option's words stays as it is, as the game's users say them."""
    resolved = list(turns)
    for k in range(1, len(turns)):
        asked, reply = turns[k - 1], turns[k]
        if asked.role != "assistant" or reply.role != "user":
            continue
        parsed = parse_action(assistant_turn_text(asked))  # as the prompt reads the turn
        if parsed.action is not Action.CLARIFY:
            continue
        question = parsed.message
        options = question_readings(question)
        if options and is_positional(reply.content, options):
            resolved[k] = Turn("user", options[match_option(reply.content, options)])
    return resolved


@dataclass(frozen=True)
class ComposedList:
    """A multi-answer built from a question's options: the list, the question whose options
    are its labels, and the tokens every generation cost."""

    parsed: ParsedAction
    question: str
    prompt_tokens: int  # the turn's prompt, as the question read it
    completion_tokens: int


def line(label: str, answer: str) -> str:
    return f"{label}: {answer}"


async def ask(engine: Engine, messages: list[dict[str, str]], params: SamplingParams,
              model: str | None, sources: Sources | None, redraws: int
              ) -> tuple[ParsedAction, int, int]:
    """The policy's clarifying question for `messages` (forced), drawn again as served when
    nobody could answer it; and the prompt's tokens and the tokens it wrote."""
    forced = replace(params, allowed_prefixes=(ACTION_PREFIXES[Action.CLARIFY],),
                     regex=None, choice_prefixes=(), decision=None, prefix_probabilities=False)
    completion = await engine.complete(messages, forced, model)
    parsed, tokens = parse_action(completion.text), completion.completion_tokens
    if redraws and needs_redraw(parsed, completion, sources):
        redraw = await redraw_question(engine, messages, forced, model, redraws, sources,
                                       grade(parsed, completion, sources))
        tokens += redraw.completion_tokens
        parsed = redraw.parsed or parsed
    return parsed, completion.prompt_tokens, tokens


async def compose_list(engine: Engine, turns: Sequence[Turn], documents: Sequence[Document],
                       costs: Costs, params: SamplingParams, model: str | None = None,
                       max_questions: int = 1, redraws: int = 0,
                       question: str | None = None) -> ComposedList | None:
    """A multi-answer for the conversation `turns`, one line per reading: the policy asks its
    question (or `question` is given), and each option the question offers is answered as if
    the user had picked it (all options in one batch). None when the question offers fewer
    than two options, so the caller keeps the policy's own list."""
    prompt_tokens = tokens = 0
    if question is None:
        messages = render_prompt(list(turns), costs, list(documents), max_questions)
        asked_by_policy, prompt_tokens, tokens = await ask(
            engine, messages, params, model, Sources.of(turns, documents), redraws)
        question = asked_by_policy.message
    options = question_readings(question)
    if len(options) < MIN_OPTIONS:
        return None
    asked = list(turns) + [Turn("assistant", question, Action.CLARIFY)]
    answer = replace(params, allowed_prefixes=(ACTION_PREFIXES[Action.ANSWER],), regex=None,
                     stop=ACTION_STOP, choice_prefixes=(), decision=None, prefix_probabilities=False,
                     max_tokens=min(params.max_tokens, LINE_MAX_TOKENS))
    # Each line is the policy's answer to its reading, asked after the question and forced to
    # answer (a follow-up that asked again would not be a line).
    follow_ups = [render_prompt(asked + [Turn("user", option)], costs, list(documents), max_questions)
                  for option in options]
    completions = await asyncio.gather(*(engine.complete(m, answer, model) for m in follow_ups))
    readings = []
    for option, completion in zip(options, completions):
        tokens += completion.completion_tokens
        readings.append(Interpretation(option, parse_action(completion.text).message))
    message = "\n".join(line(r.interpretation, r.answer) for r in readings)
    parsed = ParsedAction(Action.MULTI_ANSWER, message, tuple(readings),
                          well_formed=all(r.answer for r in readings), raw=message)
    return ComposedList(parsed, question, prompt_tokens, tokens)
