"""Scoring an evaluation's episodes: per-cell metrics, paired differences, and the baselines
built from forced episodes (the best forced reply per item, the readings rule).

The policy *beats* a baseline in a cell when its mean reward is higher by more than twice the
standard error of the paired per-item difference (`beats`): same items, same intents.
"""

from __future__ import annotations

from askwise.policy import Action, Costs, best_f1
from askwise.policy.actions import parse_interpretations

from .data import Item, readings
from .episodes import Episode

FIXED = {"always-answer": Action.ANSWER, "always-multi": Action.MULTI_ANSWER,
         "always-clarify": Action.CLARIFY}


def cell_metrics(episodes: list[Episode], items: dict[str, Item], costs: Costs) -> dict:
    n = max(1, len(episodes))
    outcomes = [e.outcome(items[e.item_id]) for e in episodes]
    return {
        "reward": sum(o.reward(costs) for o in outcomes) / n,
        "f1": sum(o.f1 for o in outcomes) / n,
        "clarify_rate": sum(e.first_action is Action.CLARIFY for e in episodes) / n,
        "multi_rate": sum(e.final_action is Action.MULTI_ANSWER for e in episodes) / n,
        "answer_rate": sum(e.first_action is Action.ANSWER for e in episodes) / n,
        "words": sum(o.words for o in outcomes) / n,
        "questions": sum(o.questions for o in outcomes) / n,
        "well_formed": sum(e.well_formed for e in episodes) / n,
    }


def item_rewards(episodes: list[Episode], items: dict[str, Item], costs: Costs) -> dict[str, float]:
    return {e.item_id: e.outcome(items[e.item_id]).reward(costs) for e in episodes}


def mean_reward(rewards: dict[str, float]) -> float:
    return sum(rewards.values()) / max(1, len(rewards))


def beats(mine: dict[str, float], theirs: dict[str, float]) -> bool:
    """Above the baseline by more than twice the standard error of the paired per-item
    difference (same items, same intents). A plain `>` would count as wins the
    hundredths-of-a-percent margins that a policy acting exactly like the baseline gets
    from the costs in its prompt changing a few greedy replies."""
    diff = paired_difference(mine, theirs)
    return diff is not None and diff[0] > 2 * diff[1]


def paired_difference(mine: dict[str, float], theirs: dict[str, float]) -> tuple[float, float] | None:
    """Mean and standard error of the per-item difference over the items both hold."""
    diffs = [mine[k] - theirs[k] for k in mine if k in theirs]
    if len(diffs) < 2:
        return None
    mean = sum(diffs) / len(diffs)
    var = sum((d - mean) ** 2 for d in diffs) / (len(diffs) - 1)
    return mean, (var / len(diffs)) ** 0.5


def best_forced(fixed: dict[str, dict[str, float]]) -> dict:
    """Per item, the forced action with the best reward (`fixed`: per strategy, per item; a
    tie goes to the strategy listed first): its mean reward and how often it clarifies and
    lists. Its rates are what maximising reward item by item with these replies would do, so
    its Spearman correlations say whether the steerability targets and the reward agree."""
    names = list(fixed)
    chosen = {item_id: max(names, key=lambda n: fixed[n].get(item_id, float("-inf")))
              for item_id in fixed[names[0]]}
    return {"reward": mean_reward({i: fixed[name][i] for i, name in chosen.items()}),
            **action_rates(chosen)}


def action_rates(chosen: dict[str, str]) -> dict[str, float]:
    """How often a per-item choice of fixed strategy (item id -> strategy) asks, and lists."""
    n = max(1, len(chosen))
    return {"clarify_rate": sum(FIXED[c] is Action.CLARIFY for c in chosen.values()) / n,
            "multi_rate": sum(FIXED[c] is Action.MULTI_ANSWER for c in chosen.values()) / n}


def readings_rule(fixed: dict[str, dict[str, float]], items: dict[str, Item]) -> dict:
    """The readings rule of the module docstring in one cell (`fixed`: per strategy, per
    item, the cell's reward): its per-item rewards and rates."""
    totals: dict[tuple[int, str], float] = {}
    for name, by_item in fixed.items():
        for item_id, r in by_item.items():
            key = readings(items[item_id]), name
            totals[key] = totals.get(key, 0.0) + r
    best = {k: max(fixed, key=lambda n: totals.get((k, n), float("-inf"))) for k in {k for k, _ in totals}}
    chosen = {item_id: best[readings(items[item_id])] for item_id in fixed["always-answer"]}
    return {"item_rewards": {i: fixed[name][i] for i, name in chosen.items()}, **action_rates(chosen)}


def list_lines(episode: Episode) -> int:
    """How many readings the episode's first multi-answer names ("If you mean X: A" lines)."""
    first = next(t for t in episode.turns if t["role"] == "assistant")
    return len(parse_interpretations(first["content"])[0])


def list_best_line_f1(episode: Episode, item: Item, intent: int | None = None) -> float:
    """F1 of the episode's first multi-answer had the user taken the line that answers its
    intent (or `intent`) best: what the list holds, apart from whether its labels lead the
    user there."""
    first = next(t for t in episode.turns if t["role"] == "assistant")
    golds = item.interpretations[episode.intent if intent is None else intent].answers
    return max((best_f1(r.answer, golds) for r in parse_interpretations(first["content"])[0]),
               default=episode.f1)


def f1_by_readings(forced: dict[str, list[Episode]], items: dict[str, Item]) -> dict:
    """Mean F1 of each forced action per readings class: why the rule picks what it picks.
    With forced lists, also how many readings a list names (a list can only be as good as
    its coverage of the query's readings), the F1 its best line holds (the user simulator
    picks by label, so a line with the right answer under the wrong label is lost) and how
    many words it has (what beta prices)."""
    table: dict[str, dict[str, float]] = {}
    for name, episodes in forced.items():
        groups: dict[int, list[Episode]] = {}
        for e in episodes:
            groups.setdefault(readings(items[e.item_id]), []).append(e)
        for k, group in sorted(groups.items()):
            row = table.setdefault(str(k), {"items": len({e.item_id for e in group})})
            row[name] = sum(e.outcome(items[e.item_id]).f1 for e in group) / len(group)
            if FIXED.get(name) is Action.MULTI_ANSWER:
                row["list_lines"] = sum(map(list_lines, group)) / len(group)
                row["list_best_line_f1"] = sum(list_best_line_f1(e, items[e.item_id]) for e in group) / len(group)
                row["list_words"] = sum(e.words for e in group) / len(group)
    return table


def spearman(xs: list[float], ys: list[float]) -> float | None:
    """Spearman's rho with average ranks for ties (Pearson correlation of the ranks)."""
    def ranks(values):
        order = sorted(range(len(values)), key=lambda i: values[i])
        result = [0.0] * len(values)
        i = 0
        while i < len(order):
            j = i
            while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
                j += 1
            for k in range(i, j + 1):
                result[order[k]] = (i + j) / 2
            i = j + 1
        return result

    rx, ry = ranks(xs), ranks(ys)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    vx = sum((a - mx) ** 2 for a in rx) ** 0.5
    vy = sum((b - my) ** 2 for b in ry) ** 0.5
    # None when a side never varies (say, an action never taken): the correlation is undefined.
    return cov / (vx * vy) if vx and vy else None
