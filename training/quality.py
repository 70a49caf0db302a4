"""What a user sees of a policy's turns, measured: its questions, its lists, when it asks.

- Question specificity (`question_quality`): of the clarifying questions the policy asks on
  ambiguous items, the share that name at least two readings (by the literal user's own rule,
  `named_readings`), the share that are questions at all (end with "?"), and their mean length
  in words.
- List quality (`list_quality`): for every final multi-answer, the F1 of the line the user
  picks by its label against the F1 of the list's best line; the ratio of their means says
  how much of what a list holds its labels let the user reach.
- Ambiguity awareness (`awareness`): the clarify-plus-list rate on ambiguous items against
  that on single-reading items. A policy that reads the query asks or lists on the first and
  answers the second where questions are cheap.
- Steering within rows and columns (`steering`): Spearman(beta, multi-answer rate) in every
  alpha row and Spearman(alpha, clarify rate) in every beta column, each where the bound
  (the best forced reply per item) varies that rate, plus the largest rise against the cost.
"""

from __future__ import annotations

from askwise.policy import Action, best_f1, count_words
from askwise.policy.actions import parse_interpretations

from .data import Item
from .episodes import Episode
from .simulator import named_readings

RISE_TOLERANCE = 0.02


def _assistant_turns(episode: Episode) -> list[dict]:
    return [t for t in episode.turns if t["role"] == "assistant"]


def clarifying_questions(episodes: list[Episode], items: dict[str, Item]) -> list[tuple[Item, str]]:
    """(item, question) for every clarifying turn on an ambiguous item."""
    return [(items[e.item_id], t["content"]) for e in episodes if items[e.item_id].ambiguous
            for t in _assistant_turns(e) if t["action"] == Action.CLARIFY.value]


def question_quality(episodes: list[Episode], items: dict[str, Item]) -> dict:
    asked = clarifying_questions(episodes, items)
    n = len(asked)
    if not n:
        return {"questions": 0, "naming_two_readings": None, "are_questions": None, "mean_words": None}
    return {"questions": n,
            "naming_two_readings": sum(len(named_readings(item, q)) >= 2 for item, q in asked) / n,
            "are_questions": sum(q.rstrip().endswith("?") for _, q in asked) / n,
            "mean_words": sum(count_words(q) for _, q in asked) / n}


def list_quality(episodes: list[Episode], items: dict[str, Item]) -> dict:
    picked, best = [], []
    for e in episodes:
        last = _assistant_turns(e)[-1]
        if last["action"] != Action.MULTI_ANSWER.value:
            continue
        lines = parse_interpretations(last["content"])[0]
        golds = items[e.item_id].interpretations[e.intent].answers
        picked.append(e.f1)  # a final multi-answer's F1 is that of the line the user picked
        best.append(max((best_f1(r.answer, golds) for r in lines), default=e.f1))
    if not picked:
        return {"lists": 0, "picked_f1": None, "best_line_f1": None, "picked_over_best": None}
    mean_picked, mean_best = sum(picked) / len(picked), sum(best) / len(best)
    return {"lists": len(picked), "picked_f1": mean_picked, "best_line_f1": mean_best,
            "picked_over_best": mean_picked / mean_best if mean_best else None}


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
