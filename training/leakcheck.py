"""Leak check: how well a surface rule over the documents tells ambiguous items from the rest.

A policy that learns "ambiguous when no document repeats the query" has learned the data's
construction, not ambiguity. For each rule, the AUC of its score for "the item is ambiguous"
over the evaluated items, oriented whichever way separates better (0.5: the rule knows
nothing; 1.0: it separates perfectly). String rules, which only the construction could make
work:
- `exact_query_match`: some document holds the normalised query word for word;
- `exact_query_match_without_question_word`: the same without the query's first word;
- `longest_query_run`: the longest run of the query's words, in order, in any document, as a
  share of the query;
- `documents`: how many documents the request carries.
And the signal a real retriever also gives, reported beside them:
- `documents_about_query`: documents holding at least 60% of the query's content words
  (passages about each entity that shares a name).
"""

from __future__ import annotations

from askwise.policy.reward import content_words, normalize_answer

from .data import Item
from .passages import contains_query

ABOUT_QUERY = 0.6


def auc(scores: list[float], labels: list[bool]) -> float | None:
    """P(score of a positive > score of a negative), ties counting half; None without both."""
    positives = [s for s, y in zip(scores, labels) if y]
    negatives = [s for s, y in zip(scores, labels) if not y]
    if not positives or not negatives:
        return None
    wins = sum((p > n) + 0.5 * (p == n) for p in positives for n in negatives)
    return wins / (len(positives) * len(negatives))


def oriented(value: float | None) -> float | None:
    """A rule may point either way ("fewer matches, more ambiguous"): the better orientation."""
    return None if value is None else max(value, 1.0 - value)


def longest_query_run(item: Item) -> float:
    query = normalize_answer(item.query).split()
    best = 0
    for doc in item.documents:
        words = normalize_answer(doc.text).split()
        # longest common contiguous run of words (dynamic programming over the two sequences)
        previous = [0] * (len(words) + 1)
        for q in query:
            current = [0] * (len(words) + 1)
            for j, w in enumerate(words, 1):
                if q == w:
                    current[j] = previous[j - 1] + 1
                    best = max(best, current[j])
            previous = current
    return best / max(1, len(query))


def documents_about_query(item: Item) -> int:
    wanted = content_words(item.query)
    if not wanted:
        return 0
    return sum(len(wanted & content_words(doc.text)) / len(wanted) >= ABOUT_QUERY for doc in item.documents)


RULES = {
    "exact_query_match": lambda item: float(any(contains_query(d.text, item.query) for d in item.documents)),
    "exact_query_match_without_question_word": lambda item: float(
        any(contains_query(d.text, item.query, skip_first=True) for d in item.documents)),
    "longest_query_run": longest_query_run,
    "documents": lambda item: float(len(item.documents)),
}
LEGITIMATE = {"documents_about_query": lambda item: float(documents_about_query(item))}


def leak_report(items: list[Item]) -> dict:
    """Per rule, its oriented AUC for "ambiguous" on `items`; `best_string_rule` names the worst
    leak. Items without documents (closed-book) give an empty report."""
    if not any(item.documents for item in items):
        return {}
    labels = [item.ambiguous for item in items]
    string_rules = {name: oriented(auc([rule(i) for i in items], labels)) for name, rule in RULES.items()}
    legitimate = {name: oriented(auc([rule(i) for i in items], labels)) for name, rule in LEGITIMATE.items()}
    known = {k: v for k, v in string_rules.items() if v is not None}
    worst = max(known, key=known.get) if known else None
    return {"string_rules": string_rules, "topic_rules": legitimate, "best_string_rule": worst,
            "best_string_rule_auc": known.get(worst) if worst else None,
            "items": len(items), "ambiguous": sum(labels)}
