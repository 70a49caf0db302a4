"""What a user sees of a policy's turns, measured: its questions, its lists, when it asks.

- Question specificity (`question_quality`): of the clarifying questions the policy asks on
  ambiguous items, the share that name at least two readings (by the literal user's own rule,
  `named_readings`), the share that are questions at all (end with "?"), one sentence ending
  with "?", over 30 words, and their mean length in words.
- List quality (`list_quality`): for every final multi-answer, the F1 of the line the user
  picks by its label against the F1 of the list's best line; the ratio of their means says
  how much of what a list holds its labels let the user reach. On ambiguous items, once per
  item and cell: lines, the share of lines whose label names a reading, lists with two labels
  alike, and the share of an item's readings that some label names.
- A list against a question (`list_against_follow_up`): the picked line's F1 against the
  answer after a question, where both named the user's reading.
- Ambiguity awareness (`awareness`): the clarify-plus-list rate on ambiguous items against
  that on single-reading items. A policy that reads the query asks or lists on the first and
  answers the second where questions are cheap.
- Steering within rows and columns (`steering`): Spearman(beta, multi-answer rate) in every
  alpha row and Spearman(alpha, clarify rate) in every beta column, each where the bound
  (the best forced reply per item) varies that rate, plus the largest rise against the cost.
"""

from __future__ import annotations

import re

from askwise.policy import Action, best_f1, count_words, normalize_answer
from askwise.policy import Interpretation as Reading
from askwise.policy.actions import parse_interpretations
from askwise.policy.questions import MAX_QUESTION_WORDS
from askwise.policy.reward import FUNCTION_WORDS

from .data import Item
from .episodes import Episode
from .simulator import closest_reading, named_readings, words_name

RISE_TOLERANCE = 0.02


def _assistant_turns(episode: Episode) -> list[dict]:
    return [t for t in episode.turns if t["role"] == "assistant"]


def clarifying_questions(episodes: list[Episode], items: dict[str, Item]) -> list[tuple[Item, str]]:
    """(item, question) for every clarifying turn on an ambiguous item."""
    return [(items[e.item_id], t["content"]) for e in episodes if items[e.item_id].ambiguous
            for t in _assistant_turns(e) if t["action"] == Action.CLARIFY.value]


# A sentence ends inside the text: ". " or "? " before a capital or a digit.
_SENTENCE_BREAK = re.compile(r"[.!?][\"')]*\s+[A-Z0-9]")


def one_sentence_question(question: str) -> bool:
    """One sentence ending with "?": what a person answers without reading twice."""
    text = question.strip()
    return text.endswith("?") and not _SENTENCE_BREAK.search(text)


def question_quality(episodes: list[Episode], items: dict[str, Item]) -> dict:
    asked = clarifying_questions(episodes, items)
    n = len(asked)
    if not n:
        return {"questions": 0, "naming_two_readings": None, "are_questions": None, "mean_words": None,
                "one_sentence": None, "over_30_words": None}
    return {"questions": n,
            "naming_two_readings": sum(len(named_readings(item, q)) >= 2 for item, q in asked) / n,
            "are_questions": sum(q.rstrip().endswith("?") for _, q in asked) / n,
            "one_sentence": sum(map(one_sentence_question, (q for _, q in asked))) / n,
            "over_30_words": sum(count_words(q) > MAX_QUESTION_WORDS for _, q in asked) / n,
            "mean_words": sum(count_words(q) for _, q in asked) / n}


def _final_list(episode: Episode) -> list[Reading] | None:
    last = _assistant_turns(episode)[-1]
    if last["action"] != Action.MULTI_ANSWER.value:
        return None
    return parse_interpretations(last["content"])[0]


def _label_key(label: str) -> frozenset[str]:
    return frozenset(normalize_answer(label).split()) - FUNCTION_WORDS


def list_quality(episodes: list[Episode], items: dict[str, Item]) -> dict:
    """What a list's lines give the user who picks one by its label, and, on ambiguous items,
    whether its labels tell the readings apart: the share of lines whose label names a
    reading, of lists with two labels alike, of an item's readings some label names."""
    picked, best, lines, naming, duplicates, covered = [], [], [], [], [], []
    seen: set[tuple[str, int]] = set()  # one list per item and cell: the user's intent varies
    for e in episodes:
        readings = _final_list(e)
        if readings is None:
            continue
        item = items[e.item_id]
        golds = item.interpretations[e.intent].answers
        picked.append(e.f1)  # a final multi-answer's F1 is that of the line the user picked
        best.append(max((best_f1(r.answer, golds) for r in readings), default=e.f1))
        if not item.ambiguous or (e.item_id, e.sample) in seen:
            continue
        seen.add((e.item_id, e.sample))
        labels = [r.interpretation for r in readings]
        lines.append(len(labels))
        named = [words_name(item, label) for label in labels]
        naming.extend(bool(n) for n in named)
        keys = [_label_key(label) for label in labels]
        duplicates.append(len(set(keys)) < len(keys))
        covered.append(len(set().union(*named)) / len(item.interpretations))
    if not picked:
        return {"lists": 0, "picked_f1": None, "best_line_f1": None, "picked_over_best": None}
    mean_picked, mean_best = sum(picked) / len(picked), sum(best) / len(best)
    share = lambda xs: sum(xs) / len(xs) if xs else None  # noqa: E731
    return {"lists": len(picked), "picked_f1": mean_picked, "best_line_f1": mean_best,
            "picked_over_best": mean_picked / mean_best if mean_best else None,
            "ambiguous_lists": len(lines), "mean_lines": share(lines),
            "lines_naming_a_reading": share(naming), "lists_with_duplicate_labels": share(duplicates),
            "readings_covered": share(covered)}


def list_against_follow_up(multi: list[Episode], clarify: list[Episode], items: dict[str, Item]) -> dict:
    """The line a user picks by its label against the answer after a question, where both
    named the user's reading: the same item, intent and cell, a list whose picked line's label
    names the intent and a question that names it. A list built from the readings should
    score as the follow-up does (ratio near 1)."""
    asked = {(e.item_id, e.sample, e.intent): e for e in clarify if e.first_action is Action.CLARIFY}
    pairs = []
    for e in multi:
        readings, other = _final_list(e), asked.get((e.item_id, e.sample, e.intent))
        item = items[e.item_id]
        if not readings or other is None or not item.ambiguous:
            continue
        line = closest_reading(item.interpretations[e.intent].question, tuple(readings))
        question = _assistant_turns(other)[0]["content"]
        if e.intent in words_name(item, line.interpretation) and e.intent in named_readings(item, question):
            pairs.append((e.f1, other.f1))
    if not pairs:
        return {"pairs": 0, "picked_line_f1": None, "follow_up_f1": None, "ratio": None}
    line_f1 = sum(p for p, _ in pairs) / len(pairs)
    follow_f1 = sum(f for _, f in pairs) / len(pairs)
    return {"pairs": len(pairs), "picked_line_f1": line_f1, "follow_up_f1": follow_f1,
            "ratio": line_f1 / follow_f1 if follow_f1 else None}


def _asks_or_lists(e: Episode) -> bool:
    return e.first_action is Action.CLARIFY or e.final_action is Action.MULTI_ANSWER


def awareness(episodes: list[Episode], items: dict[str, Item]) -> dict:
    groups = {"ambiguous": [e for e in episodes if items[e.item_id].ambiguous],
              "single": [e for e in episodes if not items[e.item_id].ambiguous]}
    result = {}
    for name, group in groups.items():
        n = len(group)
        result[f"{name}_clarify_or_list"] = sum(map(_asks_or_lists, group)) / n if n else None
        result[f"{name}_clarify"] = sum(e.first_action is Action.CLARIFY for e in group) / n if n else None
    return result


def steering(cells: list[dict], spearman, policy_rate, bound_rate) -> dict:
    """Within-row and within-column rank correlations of the policy's rates with the costs.

    `policy_rate(cell, name)` and `bound_rate(cell, name)` give the clarify or multi-answer
    rate ("clarify_rate" / "multi_rate") of the policy and of the bound in a cell.
    """
    alphas = sorted({c["alpha"] for c in cells})
    betas = sorted({c["beta"] for c in cells})
    at = {(c["alpha"], c["beta"]): c for c in cells}
    result = {"rows": [], "columns": []}
    for kind, fixed_values, moving, rate in (("rows", alphas, betas, "multi_rate"),
                                             ("columns", betas, alphas, "clarify_rate")):
        for value in fixed_values:
            line = [at[(value, m) if kind == "rows" else (m, value)] for m in moving]
            mine = [policy_rate(c, rate) for c in line]
            bound = [bound_rate(c, rate) for c in line]
            rises = [later - earlier for earlier, later in zip(mine, mine[1:])]
            result[kind].append({
                "alpha" if kind == "rows" else "beta": value,
                "bound_varies": len(set(bound)) > 1,
                "spearman": spearman(moving, mine),
                "bound_spearman": spearman(moving, bound),
                "largest_rise": max(rises, default=0.0),
                "monotone": max(rises, default=0.0) <= RISE_TOLERANCE})
    return result
