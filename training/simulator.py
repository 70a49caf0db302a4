"""User simulators: the side of the self-play conversation that knows the real intent.

Two things a user does in an episode:
- `reply`: answer the assistant's clarifying question;
- `pick`: given a multi-answer ("If you mean X: A" lines), take the answer meant for its
  intent. That picked answer is what F1 scores; the whole list is what beta prices.

`LiteralSimulator`, the default, is a person who knows what they meant but not what the
assistant is unsure about, and who answers only what is asked. Its rule, over the words that
set each reading apart (`reading_words`: the words of the reading's disambiguated question
that neither the query nor any other reading has, "2018" for "Who won the 2018 world cup?"):
- a question that names the intent (holds one of its words) gets those words back, as short
  as a person says them ("2018"): the question offered a choice and the user takes it;
- a question that names only other readings gets a correction of the same kind ("No, 2014":
  the person sees the offered options are not what they meant and says which one is), at
  most `CORRECTION_WORDS` of the intent's words;
- a question that names no reading ("What do you mean?", "Can you be more specific?") gets
  the query back ("I mean what I asked: ..."): the person cannot know which detail the
  assistant lacks, so they restate what they said, which carries nothing new;
- so does a question nobody reads as one (`policy.questions.readable`: more than 4 options,
  over 30 words, or no question mark): a recital of every document names every reading
  somewhere, and a person still does not parse it.
It never replies with the intent's question or a sentence of a document: clarifying earns
only what the question itself asked for, and a long question that recites every document
earns no more than a short one that names the readings. `pick` takes the line whose label is
closest to the intent (as a person reading the labels would).

`ReferenceSimulator` is the earlier game's user, kept for comparison: it replies with the
intent's whole question whatever it is asked (a free look-up of the answer, since that
question is in the documents of the old construction). `LLMSimulator` plays the user with a
model through the same `Engine` interface as the assistant, instructed as in the paper; it
runs on an engine of its own (by default the base model without the policy's adapter), so
the user is never the policy being trained.
"""

from __future__ import annotations

from typing import Protocol

from askwise.policy import Interpretation as Reading
from askwise.policy import normalize_answer, token_f1
from askwise.policy.engines.base import Engine, SamplingParams
from askwise.policy.questions import readable
from askwise.policy.reward import FUNCTION_WORDS

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


CORRECTION_WORDS = 4
# words that name nothing: question words, auxiliaries, determiners, pronouns
# the leak check's topic-free words, plus those a clarifying exchange adds around a reading
_FUNCTION_WORDS = FUNCTION_WORDS | set("""being you your i me my mean exactly like want know about one any
than their there they them his her not only just also very more most other""".split())


def _tokens(text: str) -> list[str]:
    return normalize_answer(text).split()


def reading_words(item: Item) -> list[list[str]]:
    """Per reading, the words (as its question writes them) that set it apart: in its
    disambiguated question, not in the query, not in any other reading's question, not a
    function word. A single-reading item's one reading has none."""
    query = set(_tokens(item.query))
    questions = [set(_tokens(r.question)) for r in item.interpretations]
    result = []
    for k, reading in enumerate(item.interpretations):
        others = set().union(*(q for j, q in enumerate(questions) if j != k))
        words, seen = [], set()
        for word in reading.question.rstrip("?").split():
            norm = " ".join(_tokens(word))
            if (norm and norm not in query and norm not in others and norm not in _FUNCTION_WORDS
                    and norm not in seen and len(item.interpretations) > 1):
                words.append(word.strip(",;:\"'()"))
                seen.add(norm)
        result.append(words)
    return result


def words_name(item: Item, text: str) -> set[int]:
    """The readings `text` holds a word of (`reading_words`): those it names."""
    said = set(_tokens(text))
    return {k for k, words in enumerate(reading_words(item))
            if any(" ".join(_tokens(w)) in said for w in words)}


def named_readings(item: Item, question: str) -> set[int]:
    """The readings `question` names (`words_name`); none when a person would not read it as
    a question (`readable`)."""
    return words_name(item, question) if readable(question) else set()


class ReferenceSimulator:
    """The earlier game's user: states its intent's whole question whatever it is asked."""

    async def reply(self, item: Item, intent: int, question: str) -> str:
        return item.interpretations[intent].question

    async def pick(self, item: Item, intent: int, readings: tuple[Reading, ...], message: str) -> str:
        chosen = closest_reading(item.interpretations[intent].question, readings)
        return message if chosen is None else chosen.answer


class LiteralSimulator(ReferenceSimulator):
    """A user who answers only what is asked (the rule is in the module docstring)."""

    async def reply(self, item: Item, intent: int, question: str) -> str:
        return literal_reply(item, intent, question)


def literal_reply(item: Item, intent: int, question: str) -> str:
    words = reading_words(item)[intent]
    named = named_readings(item, question)
    if intent in named:
        asked = set(_tokens(question))
        return " ".join(w for w in words if " ".join(_tokens(w)) in asked)
    if named:
        # a reading subsumed by another has no words of its own: "not those" still tells
        return "No, " + " ".join(words[:CORRECTION_WORDS]) if words else "No, neither of those."
    return f"I mean what I asked: {item.query}"


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
    """The user played by a model, through an engine interface of its own (`--user-model`)."""

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
