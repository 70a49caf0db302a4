"""Datasets as self-play environments: a query, its interpretations, and their gold answers.

An `Item` is what the environment knows and the assistant does not: every way the query can
be read (`Interpretation`: a fully specified question, its gold answers with all aliases, and
a probability). The environment samples one interpretation as the user's real intent; only
the user simulator ever sees it.

AmbigQA (light): a `multipleQAs` annotation gives one interpretation per disambiguated
question; otherwise the query is unambiguous and its `singleAnswer` aliases (from every
annotator) are the gold answers. Probabilities are uniform: the annotations carry no
frequencies. Where annotators disagree, the first `multipleQAs` annotation wins.

Grounded setting (`grounded_documents`): the request carries documents, so a small model can
answer from them instead of from its own knowledge. Each reading's fact is a statement inside a
short passage, distractor passages come from other items of the same slice (train, or the
item's half of dev), 4 to 7 in all, shuffled; passages.py says how, and why no string rule
tells a one-reading item from an ambiguous one. The random generator is seeded from (seed,
item id): the same item gets the same documents in training, evaluation and tests, whichever
split it is loaded through.

Slices of AmbigQA dev (`SPLITS`): "dev-selection" for every decision (checkpoints, grid values,
hyperparameters) and "dev-test", reported only for a checkpoint being shipped. An item's half
is fixed by its id alone (`dev_slice`: the parity of the first byte of sha256(id)), so it
never moves when the file, a limit or a seed changes. The first `EARLY_DEV_ITEMS` usable
items of the dev file chose the checkpoints that earlier policies descend from, before the
halves existed, so the dev-test items among them are not test items: "dev-test" leaves them
out and "dev-test-early" holds them, reported apart for comparison only. "dev" is the whole
file.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from askwise.policy import Document

from .passages import passage, statement

DATA_DIR = Path(__file__).parent / "data"
AMBIGQA_FILES = {"train": "ambigqa/train_light.json", "dev": "ambigqa/dev_light.json"}
SPLITS = {"train": "train", "dev": "dev", "dev-selection": "dev", "dev-test": "dev",
          "dev-test-early": "dev"}
EARLY_DEV_ITEMS = 200
MAX_INTERPRETATIONS = 6  # longer lists make multi-answers of 100+ words; such items are skipped
MIN_DOCUMENTS, MAX_DOCUMENTS = 4, 7
# Names the document construction in a checkpoint's askwise.json ("game"). The earlier one,
# "qa-facts": one "Q: <question> A: <answer>"-style fact per reading, the query itself for a
# single-reading item (it gave the ambiguity away: leakcheck.py).
DOCUMENTS_VERSION = "passages-1"


@dataclass(frozen=True)
class Interpretation:
    question: str
    answers: tuple[str, ...]
    probability: float


@dataclass(frozen=True)
class Item:
    id: str
    query: str
    interpretations: tuple[Interpretation, ...]
    documents: tuple[Document, ...] = ()

    @property
    def ambiguous(self) -> bool:
        return len(self.interpretations) > 1


def _clean(question: str) -> str:
    # "a|b" lists paraphrases of one disambiguated question; ":" would end the interpretation
    # in a multi-answer line ("If you mean X: A").
    return " ".join(question.split("|")[0].replace(":", " -").split())


def _ambigqa_item(raw: dict) -> Item | None:
    query = " ".join(raw["question"].split())
    multiple = [a for a in raw["annotations"] if a["type"] == "multipleQAs"]
    if multiple:
        pairs = [(p["question"], p["answer"]) for p in multiple[0]["qaPairs"] if p["answer"]]
        if not 2 <= len(pairs) <= MAX_INTERPRETATIONS:
            return None
        share = 1.0 / len(pairs)
        readings = tuple(Interpretation(_clean(q), tuple(a), share) for q, a in pairs)
    else:
        answers = []
        for annotation in raw["annotations"]:
            answers += [a for a in annotation.get("answer", []) if a not in answers]
        if not answers:
            return None
        readings = (Interpretation(query, tuple(answers), 1.0),)
    return Item(id=raw["id"], query=query, interpretations=readings)


@lru_cache(maxsize=4)
def _ambigqa_items(path: Path) -> tuple[Item, ...]:
    with open(path, encoding="utf-8") as f:
        raw = json.load(f)
    return tuple(item for item in map(_ambigqa_item, raw) if item is not None)


def dev_slice(item_id: str) -> str:
    """"dev-selection" or "dev-test": half of AmbigQA dev each, fixed by the item's id."""
    return "dev-test" if hashlib.sha256(item_id.encode()).digest()[0] % 2 else "dev-selection"


def load_ambigqa(split: str, limit: int | None = None, grounded: bool = True, seed: int = 0,
                 path: str | Path | None = None) -> list[Item]:
    """AmbigQA light `split` (one of `SPLITS`); the first `limit` usable items, in file order.

    Distractors come from the item's whole slice (data from outside it never enters its
    documents), so a small `limit` still sees varied distractors, and an item's documents do
    not depend on the split or limit it is loaded with.
    """
    if split not in SPLITS:
        raise ValueError(f"unknown AmbigQA split {split!r}; choose from {sorted(SPLITS)}")
    if path is None:
        path = DATA_DIR / AMBIGQA_FILES[SPLITS[split]]
    pool = _ambigqa_items(Path(path))
    items = list(pool)
    if split.startswith("dev-"):
        early = {item.id for item in pool[:EARLY_DEV_ITEMS]}
        items = [item for item in pool if dev_split(item.id, item.id in early) == split]
    items = items[:limit] if limit else items
    if grounded:
        halves = {name: tuple(item for item in pool if dev_slice(item.id) == name)
                  for name in ("dev-selection", "dev-test")} if SPLITS[split] == "dev" else {}
        items = [grounded_documents(item, halves.get(dev_slice(item.id), pool), seed) for item in items]
    return items


def dev_split(item_id: str, early: bool) -> str:
    """The dev split an item belongs to: its half, with the early dev-test items apart."""
    half = dev_slice(item_id)
    return "dev-test-early" if early and half == "dev-test" else half


def item_rng(seed: int, *keys: object) -> random.Random:
    """A generator that depends only on (seed, keys): stable across runs and processes."""
    digest = hashlib.sha256(repr((seed,) + keys).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def _noise(pool: tuple[Item, ...] | list[Item], item: Item, rng: random.Random, count: int) -> list[str]:
    """`count` statements of readings of other items: what a retriever returns besides."""
    sentences = []
    while len(sentences) < count:
        other = pool[rng.randrange(len(pool))]
        if other.id != item.id:
            reading = rng.choice(other.interpretations)
            sentences.append(statement(reading.question, reading.answers[0], rng))
    return sentences


def grounded_documents(item: Item, pool: tuple[Item, ...] | list[Item], seed: int = 0) -> Item:
    """`item` with documents for the grounded setting (see the module docstring)."""
    rng = item_rng(seed, "documents", item.id)
    docs = [passage(statement(r.question, r.answers[0], rng), _noise(pool, item, rng, rng.randint(0, 2)), rng)
            for r in item.interpretations]
    total = max(len(docs), rng.randint(MIN_DOCUMENTS, MAX_DOCUMENTS))
    while len(docs) < total:
        docs.append(" ".join(_noise(pool, item, rng, rng.randint(1, 3))))
    rng.shuffle(docs)
    return Item(item.id, item.query, item.interpretations, tuple(Document(d) for d in docs))


def readings(item: Item) -> int:
    """How ambiguous an item is, in classes: 1, 2, 3, or 4 for 4 or more readings."""
    return min(len(item.interpretations), 4)


def sample_intent(item: Item, rng: random.Random) -> int:
    """Index of the user's real intent, drawn from the interpretations' probabilities."""
    weights = [r.probability for r in item.interpretations]
    return rng.choices(range(len(weights)), weights=weights)[0]
