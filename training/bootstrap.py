"""Bootstrap: format demonstrations before self-play, for models too small to follow the prompt.

The paper starts ReST from instruction-tuned models of 2-9B parameters that already follow the
action format when prompted. SmolLM2-135M does not: given the documents, its forced
`#MULTI_ANS` lists are rambling and its answers repeat whole sentences, so a first grow step
would have almost nothing worth keeping. The bootstrap teaches the *form* of each action from
the annotations, before any self-play:
- `#ANSWER`: the first gold answer of one reading, drawn by probability (a guess);
- `#MULTI_ANS`: one "If you mean <reading>: <answer>" line per reading;
- `#CLARIFY`: a question naming the readings, then, after the user's reply (the reference
  simulator's), `#ANSWER` with the answer for the reading the user meant.
Each item shows ONE action drawn uniformly, under costs drawn uniformly from the training grid:
nothing here ties an action to the costs or to the item. When to use which action is left
entirely to ReST, which learns it from rewards.
"""

from __future__ import annotations

import asyncio

from askwise.policy import Action, Costs, Interpretation, Turn, format_action, render_prompt

from .data import Item, item_rng
from .simulator import ReferenceSimulator


def clarifying_question(item: Item) -> str:
    readings = [r.question.rstrip("?") for r in item.interpretations]
    if len(readings) == 1:
        return "What exactly would you like to know?"
    if len(readings) == 2:
        return f"Do you mean: {readings[0]}, or {readings[1]}?"
    return "Which do you mean: " + "; ".join(readings) + "?"


def demonstrations(items: list[Item], grid: list[Costs], max_questions: int, seed: int,
                   actions: tuple[Action, ...] = tuple(Action)
                   ) -> list[tuple[list[dict[str, str]], str]]:
    """(prompt messages, reply) pairs: one action per item, drawn from `actions` (see module
    docstring)."""
    simulator = ReferenceSimulator()
    examples = []
    for item in items:
        rng = item_rng(seed, "bootstrap", item.id)
        action = rng.choice(list(actions))
        costs = rng.choice(grid)
        weights = [r.probability for r in item.interpretations]
        guess = item.interpretations[rng.choices(range(len(weights)), weights=weights)[0]]
        turns = [Turn("user", item.query)]

        def example(reply_action: Action, message: str, readings=()):
            reply = format_action(reply_action, message, readings)
            examples.append((render_prompt(turns, costs, item.documents, max_questions), reply))

        if action is Action.ANSWER:
            example(Action.ANSWER, guess.answers[0])
        elif action is Action.MULTI_ANSWER:
            example(Action.MULTI_ANSWER, "", [Interpretation(r.question, r.answers[0])
                                              for r in item.interpretations])
        elif max_questions > 0:
            question = clarifying_question(item)
            example(Action.CLARIFY, question)
            turns.append(Turn("assistant", question, Action.CLARIFY))
            intent = item.interpretations.index(guess)
            turns.append(Turn("user", asyncio.run(simulator.reply(item, intent, ""))))
            example(Action.ANSWER, guess.answers[0])
    return examples
