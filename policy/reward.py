"""The paper's cost-penalised accuracy.

    R = F1(final answer, gold answers of the user's real intent)
        - alpha * (number of clarifying questions)
        - beta  * (number of words of the final answer)

F1 is SQuAD's normalised token F1 (lower case, no punctuation, no articles, collapsed
whitespace), taking the best match over the gold aliases. Because R is a known function of
three measured numbers, one episode can be re-scored for any (alpha, beta) after the fact.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from .actions import Action
from .costs import Costs

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)
_WORD = re.compile(r"\S+")
# words that say nothing about the topic: question words, auxiliaries, determiners
FUNCTION_WORDS = frozenset("""who whom what which when where why how is was are were do does did has have
had be been will can could would should of in on at to for by from with and or a an the that this
these those it its as s""".split())


def normalize_answer(text: str) -> str:
    """SQuAD v1.1 answer normalisation."""
    text = text.lower().translate(_PUNCT)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def content_words(text: str) -> set[str]:
    """The normalised words of `text` that are about something (not `FUNCTION_WORDS`)."""
    return {w for w in normalize_answer(text).split() if w not in FUNCTION_WORDS}


def token_f1(prediction: str, gold: str) -> float:
    pred_tokens = normalize_answer(prediction).split()
    gold_tokens = normalize_answer(gold).split()
    if not pred_tokens or not gold_tokens:
        # SQuAD convention: two empty answers agree, one empty answer scores zero.
        return float(pred_tokens == gold_tokens)
    common = Counter(pred_tokens) & Counter(gold_tokens)
    overlap = sum(common.values())
    if overlap == 0:
        return 0.0
    precision = overlap / len(pred_tokens)
    recall = overlap / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def best_f1(prediction: str, golds: Iterable[str]) -> float:
    """F1 against the closest gold alias; 0 when there are no golds."""
    return max((token_f1(prediction, g) for g in golds), default=0.0)


def count_words(text: str) -> int:
    """Words as a listener hears them: whitespace-separated runs."""
    return len(_WORD.findall(text))


@dataclass(frozen=True)
class Outcome:
    """What an episode measured; enough to score it under any costs."""

    f1: float
    questions: int
    words: int

    def reward(self, costs: Costs) -> float:
        return reward(self.f1, self.questions, self.words, costs)


def reward(f1: float, questions: int, words: int, costs: Costs) -> float:
    return f1 - costs.alpha * questions - costs.beta * words


def turn_cost(action: Action, message: str, costs: Costs) -> float:
    """What one assistant turn adds to the penalty: alpha for a question, beta per word of a
    final answer (only the final answer's words are priced)."""
    return costs.alpha if action is Action.CLARIFY else costs.beta * count_words(message)
