"""PACIFIC (validation) as grounded evaluation items: financial tables and text, and questions
that sometimes need a clarification.

Each dialogue holds a TAT-QA table and its paragraphs; these become the documents (the table
as one document, one row per "; "-separated line, then each paragraph). Items come from the
dialogue's turns that stand alone (`follow_up` false):
- a turn whose gold response is a clarifying question (`req_clari`): the query is the turn as
  asked; the user's intent is the next turn's fully specified `original_question`, with that
  turn's answer. Only the reading the user went on to mean is annotated, so these items have
  one interpretation, but answering them without asking means guessing it;
- any other standalone turn (except the user's reply to a clarification): the query and its
  `original_question` coincide in meaning; one interpretation.
Dialogues whose documents exceed `MAX_DOCUMENT_CHARS` are left out. Gold answers: a span
answer as is; a multi-span answer as its spans joined; a number as written and in plain
decimal form, also with its scale word ("million") where one is given.
`load_pacific` alternates the two kinds, so a small evaluation sees both in equal numbers.

The train split is not shipped (see data/README.md), so PACIFIC evaluates a policy
trained on AmbigQA: a test of transfer to a new domain.
"""

from __future__ import annotations

import json
from pathlib import Path

from askwise.policy import Document

from .data import DATA_DIR, Interpretation, Item

PACIFIC_FILE = DATA_DIR / "pacific" / "validation.json"
# About 1,000 tokens: with the instructions the prompt stays inside a 2,048-token context.
MAX_DOCUMENT_CHARS = 4000


def _answers(turn: dict) -> tuple[str, ...]:
    answer, scale = turn["answer"], turn.get("scale") or ""
    if isinstance(answer, list):
        texts = [" ".join(str(a) for a in answer)] if len(answer) > 1 else [str(a) for a in answer]
    else:
        texts = [str(answer)]
        if isinstance(answer, (int, float)):
            texts.append(f"{answer:g}")
    if scale and scale != "percent":
        texts += [f"{t} {scale}" for t in texts]
    elif scale == "percent":
        texts += [f"{t}%" for t in texts]
    return tuple(dict.fromkeys(t for t in texts if t.strip()))


def _documents(dialogue: dict) -> tuple[Document, ...]:
    rows = ["; ".join(" ".join(str(c).split()) for c in row if str(c).strip())
            for row in dialogue["table"]["table"]]
    table = Document(" | ".join(r for r in rows if r), title="Table")
    paragraphs = sorted(dialogue["paragraphs"], key=lambda p: p["order"])
    return (table,) + tuple(Document(p["text"]) for p in paragraphs)


def pacific_items(path: Path = PACIFIC_FILE) -> tuple[list[Item], list[Item]]:
    """(items needing clarification, items that do not), in file order."""
    with open(path, encoding="utf-8") as f:
        dialogues = json.load(f)
    unclear, clear = [], []
    for dialogue in dialogues:
        documents = _documents(dialogue)
        if sum(len(d.text) + len(d.title) for d in documents) > MAX_DOCUMENT_CHARS:
            continue
        turns = sorted(dialogue["questions"], key=lambda t: t["order"])
        for k, turn in enumerate(turns):
            if turn.get("follow_up") or (k > 0 and turns[k - 1].get("req_clari")):
                continue
            if turn.get("req_clari"):
                if k + 1 >= len(turns) or turns[k + 1].get("req_clari"):
                    continue
                resolved = turns[k + 1]
                reading = Interpretation(resolved["original_question"], _answers(resolved), 1.0)
                unclear.append(Item(turn["uid"], turn["question"], (reading,), documents))
            else:
                reading = Interpretation(turn["original_question"], _answers(turn), 1.0)
                if reading.answers:
                    clear.append(Item(turn["uid"], turn["question"], (reading,), documents))
    return unclear, clear


def load_pacific(limit: int | None = None, seed: int = 0, path: Path = PACIFIC_FILE) -> list[Item]:
    """Items alternating between needing clarification and not; the first `limit`."""
    unclear, clear = pacific_items(path)
    mixed = []
    for pair in zip(unclear, clear):
        mixed += pair
    return mixed[:limit] if limit else mixed
