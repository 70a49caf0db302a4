"""Bootstrap: format demonstrations before self-play, for models too small to follow the prompt.

The paper starts ReST from instruction-tuned models of 2-9B parameters that already follow the
action format when prompted. SmolLM2-135M does not: given the documents, its forced
`#MULTI_ANS` lists are rambling and its answers repeat whole sentences, so a first grow step
would have almost nothing worth keeping. The bootstrap teaches the *form* of each action from
the annotations, before any self-play:
- `#ANSWER`: the first gold answer of one reading, drawn by probability (a guess);
- `#MULTI_ANS`: one "If you mean <reading>: <answer>" line per reading, the reading named by
  its whole disambiguated question or, with `list_labels="difference"`, by only the words
  that question adds to the query ("If you mean in 2016: ..."; `reading_labels`);
- `#CLARIFY`: a question naming the readings, then, after the user's reply (the reference
  simulator's), `#ANSWER` with the answer for the reading the user meant.
Each item shows ONE action drawn uniformly, under costs drawn uniformly from the training grid:
nothing here ties an action to the costs or to the item. When to use which action is left
entirely to ReST, which learns it from rewards.
"""

from __future__ import annotations

import asyncio
import difflib
from typing import Literal

from askwise.policy import Action, Costs, Interpretation, Turn, format_action, render_prompt

from .data import Item, item_rng
from .simulator import ReferenceSimulator

ListLabels = Literal["question", "difference"]


def _difference(query: str, question: str) -> str:
    """The stretch of `question` from its first to its last word that the query lacks."""
    asked, meant = query.rstrip("?").split(), question.rstrip("?").split()
    matcher = difflib.SequenceMatcher(a=[w.lower() for w in asked], b=[w.lower() for w in meant],
                                      autojunk=False)
    added = [(j1, j2) for tag, _, _, j1, j2 in matcher.get_opcodes() if tag != "equal" and j2 > j1]
    return " ".join(meant[added[0][0]:added[-1][1]]) if added else ""


def reading_labels(item: Item, list_labels: ListLabels = "question") -> list[str]:
    """How a multi-answer names each reading of `item`.

    A list is priced per word, and a disambiguated question repeats the whole query: naming a
    reading by what it adds ("in 2016") cuts a typical AmbigQA list by a third, and the user
    still tells the readings apart by it. Where that would leave a reading unnamed or two
    readings with one name, the item keeps its whole questions.
    """
    questions = [r.question for r in item.interpretations]
    if list_labels == "question":
        return questions
    labels = [_difference(item.query, q) for q in questions]
    if not all(labels) or len({label.lower() for label in labels}) < len(labels):
        return questions
    return labels


def clarifying_question(item: Item) -> str:
    readings = [r.question.rstrip("?") for r in item.interpretations]
    if len(readings) == 1:
        return "What exactly would you like to know?"
    if len(readings) == 2:
        return f"Do you mean: {readings[0]}, or {readings[1]}?"
    return "Which do you mean: " + "; ".join(readings) + "?"


def demonstrations(items: list[Item], grid: list[Costs], max_questions: int, seed: int,
                   actions: tuple[Action, ...] = tuple(Action), list_labels: ListLabels = "question"
                   ) -> list[tuple[list[dict[str, str]], str]]:
    """(prompt messages, reply) pairs: one action per item, drawn from `actions`, lists named
    as `list_labels` says (see module docstring)."""
    simulator = ReferenceSimulator()
    examples = []
    for item in items:
        rng = item_rng(seed, "bootstrap", item.id)
        action = rng.choice(list(actions))
        costs = rng.choice(grid)
        weights = [r.probability for r in item.interpretations]
        guess = item.interpretations[rng.choices(range(len(weights)), weights=weights)[0]]
        turns = [Turn("user", item.query)]

        def example(reply_action: Action, message: str, readings=(), turns=turns, costs=costs, item=item):
            reply = format_action(reply_action, message, readings)
            examples.append((render_prompt(turns, costs, item.documents, max_questions), reply))

        if action is Action.ANSWER:
            example(Action.ANSWER, guess.answers[0])
        elif action is Action.MULTI_ANSWER:
            labels = reading_labels(item, list_labels)
            example(Action.MULTI_ANSWER, "", [Interpretation(label, r.answers[0])
                                              for label, r in zip(labels, item.interpretations)])
        elif max_questions > 0:
            question = clarifying_question(item)
            example(Action.CLARIFY, question)
            turns.append(Turn("assistant", question, Action.CLARIFY))
            intent = item.interpretations.index(guess)
            turns.append(Turn("user", asyncio.run(simulator.reply(item, intent, ""))))
            example(Action.ANSWER, guess.answers[0])
    return examples
