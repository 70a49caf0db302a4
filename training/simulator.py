"""User simulators: the side of the self-play conversation that knows the real intent.

Two things a user does in an episode:
- `reply`: answer the assistant's clarifying question;
- `pick`: given a multi-answer ("If you mean X: A" lines), take the answer meant for its
  intent. That picked answer is what F1 scores; the whole list is what beta prices.

`ReferenceSimulator` does both deterministically: it replies with its intent's question and
picks the reading closest to it by token F1. Cheap and reproducible, for CPU training and
evaluation. `LLMSimulator` plays the user with a model through the same `Engine` interface
as the assistant, instructed as in the paper: it knows its intent, does not state it
verbatim, does not use its own knowledge, and copies the answer that matches its intent.
"""

from __future__ import annotations

from typing import Protocol

from askwise.policy import Interpretation as Reading
from askwise.policy import token_f1
from askwise.policy.engines.base import Engine, SamplingParams

from .data import Item


class UserSimulator(Protocol):
    async def reply(self, item: Item, intent: int, question: str) -> str:
        """The user's answer to the assistant's clarifying `question`."""

    async def pick(self, item: Item, intent: int, readings: tuple[Reading, ...], message: str) -> str:
        """The answer the user takes from a multi-answer; `message` when nothing parsed."""


def closest_reading(intent_question: str, readings: tuple[Reading, ...]) -> Reading | None:
    # Ties go to the earlier line: a list that repeats one reading gains nothing from it.
    best, best_score = None, -1.0
    for reading in readings:
        score = token_f1(reading.interpretation, intent_question)
        if score > best_score:
            best, best_score = reading, score
    return best


class ReferenceSimulator:
    """Deterministic user: states its intent when asked; picks the closest reading."""

    async def reply(self, item: Item, intent: int, question: str) -> str:
        return item.interpretations[intent].question

    async def pick(self, item: Item, intent: int, readings: tuple[Reading, ...], message: str) -> str:
        chosen = closest_reading(item.interpretations[intent].question, readings)
        return message if chosen is None else chosen.answer


USER_INSTRUCTIONS = """\
You are a user talking to an AI assistant. You asked: "{query}"
What you really mean is: "{intent}"
The assistant does not know what you mean. Rules:
- Answer its question in a few words, so that it can tell what you mean.
- Do not repeat the sentence above word for word.
- Do not answer your own question and do not use your own knowledge."""

PICK_INSTRUCTIONS = """\
You are a user. You asked: "{query}", and you meant: "{intent}".
The assistant gave one answer per meaning. Copy the one answer that matches what you meant,
and nothing else."""


class LLMSimulator:
    """The user played by a model, through the same engine interface as the assistant."""

    def __init__(self, engine: Engine, model: str | None = None, max_tokens: int = 48,
                 temperature: float = 0.0):
        self.engine = engine
        self.model = model
        self.params = SamplingParams(max_tokens=max_tokens, temperature=temperature, stop=("\n",))

    async def reply(self, item: Item, intent: int, question: str) -> str:
        system = USER_INSTRUCTIONS.format(query=item.query, intent=item.interpretations[intent].question)
        messages = [{"role": "system", "content": system}, {"role": "user", "content": question}]
        completion = await self.engine.complete(messages, self.params, self.model)
        text = completion.text.strip()
        # An empty reply would leave the assistant nothing to act on; the query says at least that.
        return text or item.query

    async def pick(self, item: Item, intent: int, readings: tuple[Reading, ...], message: str) -> str:
        if not readings:
            return message
        system = PICK_INSTRUCTIONS.format(query=item.query, intent=item.interpretations[intent].question)
        listing = "\n".join(f"If you mean {r.interpretation}: {r.answer}" for r in readings)
        messages = [{"role": "system", "content": system}, {"role": "user", "content": listing}]
        completion = await self.engine.complete(messages, self.params, self.model)
        text = completion.text.strip()
        # A model that copies a whole line, or wanders, is mapped back to the line it meant:
        # the user can only take an answer that the assistant actually gave.
        chosen = closest_reading(text, readings) if text else None
        return (chosen or readings[0]).answer
