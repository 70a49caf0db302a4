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
- `#CLARIFY`: a question offering the readings by what sets each apart, as a person would ask
  it ("Do you mean in 2018 or in 2014?", `question_labels`), then the literal user's short
  reply ("2018") and `#ANSWER` with the answer for the reading the user meant. On an item
  with one reading there is nothing to offer; the question is an open one and the user's
  reply restates the query, which is what such a question earns in the game. With
  `open_questions=False` such an item shows a direct answer instead, so that every
  demonstrated question offers readings: a small model copies the one fixed open question
  in place of finding the readings in the documents.
Each item shows ONE action drawn uniformly, under costs drawn uniformly from the training grid:
nothing here ties an action to the costs, nor (open questions aside) to the item. When to use which action is left
entirely to ReST, which learns it from rewards.
"""

from __future__ import annotations

import difflib
from typing import Literal

from askwise.policy import Action, Costs, Interpretation, Turn, format_action, render_prompt

from .data import Item, item_rng
from .simulator import literal_reply, reading_words

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


QUESTION_READINGS = 4  # a spoken question offers a few options; the user corrects the rest
LABEL_WORDS = 5  # an option longer than this reads as a sentence, not a choice


def question_labels(item: Item) -> list[str]:
    """How a clarifying question names each reading: what its question adds to the query
    ("in 2018") when that is short, else the words that set it apart ("2018"), else (a
    reading with no words of its own) its whole question."""
    short = reading_labels(item, "difference")
    labels = []
    for k, (reading, words) in enumerate(zip(item.interpretations, reading_words(item))):
        own = {w.lower() for w in words}
        said = {w.strip(",;:\"'()").lower() for w in short[k].split()}
        if short[k] != reading.question and len(said) <= LABEL_WORDS and own & said:
            labels.append(short[k])
        elif words:
            labels.append(" ".join(words[:LABEL_WORDS]))
        else:
            labels.append(reading.question.rstrip("?"))
    return labels


def clarifying_question(item: Item) -> str:
    if len(item.interpretations) == 1:
        return "What exactly would you like to know?"
    labels = list(dict.fromkeys(question_labels(item)))[:QUESTION_READINGS]
    if len(labels) == 1:
        return f"Do you mean {labels[0]}?"
    return "Do you mean " + ", ".join(labels[:-1]) + f" or {labels[-1]}?"


def demonstrations(items: list[Item], grid: list[Costs], max_questions: int, seed: int,
                   actions: tuple[Action, ...] = tuple(Action), list_labels: ListLabels = "question",
                   open_questions: bool = True) -> list[tuple[list[dict[str, str]], str]]:
    """(prompt messages, reply) pairs: one action per item, drawn from `actions`, lists named
    as `list_labels` says (see module docstring)."""
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

        if action is Action.ANSWER or (action is Action.CLARIFY and not open_questions
                                       and not item.ambiguous):
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
            turns.append(Turn("user", literal_reply(item, intent, question)))
            example(Action.ANSWER, guess.answers[0])
    return examples
