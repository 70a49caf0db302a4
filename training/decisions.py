"""Decisions scored on the same replies: the policy's own tag, and the expected-value head.

An evaluation plays each item's three forced first actions in every cost cell: those are the
replies. A decision picks one of them per item and cell, so two decisions met on the same
items differ in the decision alone, and their paired difference measures it:

- policy: the tag the policy writes first when every action is allowed, decoded greedily
  (`policy_choices`), as `askwise serve --decision policy` serves it. Its greedy reply past
  that tag is the forced reply for the tag (greedy decoding after the same prefix gives the
  same tokens), so its episode is that forced episode.
- value: the argmax of the head's expectations at the cell's costs (policy/value.py), from
  one state per item (`value_estimates`).

`estimate_check` sets each action's mean predicted F1 and words against what its forced
episodes realised in the cell: whether the estimates the decision rests on are honest.
`targets` counts what the grid shows against the fixed strategies and the readings rule.
"""

from __future__ import annotations

import json
from pathlib import Path

from askwise.policy import Action, Costs
from askwise.policy.value import ACTIONS, OUTPUTS, ValueHead, decide, expected_from_outputs

from .data import Item
from .episodes import Episode
from .scoring import FIXED


def policy_choices(tagged: list[Episode]) -> dict[tuple[int, str], Action]:
    """The action the policy's greedy reply starts with, per (cell index, item id), as the
    episodes played with `tags` recorded it (`EpisodeSpec.tags`)."""
    choices = {}
    for e in tagged:
        tag = e.extra.get("tag")
        if tag is None:
            raise ValueError(f"episode {e.key} records no tag the policy's reply started with")
        choices[(e.sample, e.item_id)] = Action(tag)
    return choices


def value_estimates(out: Path, items: list[Item], base: Path, adapter: Path, max_questions: int,
                    threads: int) -> dict[str, list[float]]:
    """The head's six outputs per item (cost-free: one state per item), cached in `out`."""
    from askwise.policy.checkpoints import adapter_fingerprint, merged_checkpoint

    from .value import prompt_states, state_prompt

    head = ValueHead.load(adapter)
    key = adapter_fingerprint(adapter)
    cached = json.loads(out.read_text()) if out.exists() else {}
    estimates = cached.get("items", {}) if cached.get("adapter") == key else {}
    missing = [item for item in items if item.id not in estimates]
    if missing:
        states = prompt_states(merged_checkpoint(base, adapter),
                               [state_prompt(item, max_questions) for item in missing], threads=threads,
                               desc="value states")
        estimates.update({item.id: head.outputs(states[k]) for k, item in enumerate(missing)})
        out.write_text(json.dumps({"adapter": key, "outputs": list(OUTPUTS), "items": estimates}) + "\n")
    return {item.id: estimates[item.id] for item in items}


def value_choices(estimates: dict[str, list[float]], grid: list[Costs], max_questions: int
                  ) -> dict[tuple[int, str], Action]:
    allowed = ACTIONS if max_questions > 0 else (Action.ANSWER, Action.MULTI_ANSWER)
    return {(cell, item_id): decide(expected_from_outputs(outputs, allowed), costs)
            for cell, costs in enumerate(grid) for item_id, outputs in estimates.items()}


def chosen_episodes(forced: dict[str, list[Episode]], choices: dict[tuple[int, str], Action]
                    ) -> list[Episode]:
    """Per (cell, item), the forced episode of the action `choices` names."""
    by_action = {FIXED[name]: {(e.sample, e.item_id): e for e in eps} for name, eps in forced.items()}
    return [by_action[action][key] for key, action in sorted(choices.items())
            if key in by_action.get(action, {})]


def estimate_check(forced: dict[str, list[Episode]], estimates: dict[str, list[float]],
                   items: dict[str, Item], cell: int) -> dict[str, dict[str, float]]:
    """Per action: the mean predicted F1 and words over the cell's items, and the mean its
    forced episodes realised (F1 in expectation over intents where the reply could not
    depend on the intent, episodes.py)."""
    result = {}
    for name, episodes in forced.items():
        action = FIXED[name]
        k = ACTIONS.index(action)
        mine = [e for e in episodes if e.sample == cell and e.item_id in estimates]
        if not mine:
            continue
        n = len(mine)
        result[action.value] = {
            "predicted_f1": sum(min(1.0, max(0.0, estimates[e.item_id][k])) for e in mine) / n,
            "realised_f1": sum(e.outcome(items[e.item_id]).f1 for e in mine) / n,
            "predicted_words": sum(max(0.0, estimates[e.item_id][len(ACTIONS) + k]) for e in mine) / n,
            "realised_words": sum(e.words for e in mine) / n}
    return result


ESTIMATE_TOLERANCE = 0.05


def targets(cells: list[dict]) -> dict:
    """What the grid shows for the evaluated decision: against the best fixed strategy of each
    cell (never behind by more than one paired SE; ahead by more than two), against the
    readings rule, whether its rates follow the costs with no exception, and how honest its
    estimates are."""
    result: dict = {"cells": len(cells)}
    if cells and "best_fixed" in cells[0]:
        result["never_behind_best_fixed"] = sum(c["best_fixed"]["diff"] >= -c["best_fixed"]["se"] for c in cells)
        result["ahead_of_best_fixed_by_2se"] = sum(c["best_fixed"]["diff"] > 2 * c["best_fixed"]["se"]
                                                   for c in cells)
        result["at_least_readings_rule"] = sum(c["policy"]["reward"] >= c["readings_rule"]["reward"] - 1e-12
                                               for c in cells)
    at = {(c["alpha"], c["beta"]): c for c in cells}
    alphas = sorted({c["alpha"] for c in cells})
    betas = sorted({c["beta"] for c in cells})
    rises = [at[(a2, b)]["policy"]["clarify_rate"] - at[(a1, b)]["policy"]["clarify_rate"]
             for b in betas for a1, a2 in zip(alphas, alphas[1:])]
    result["largest_clarify_rise_with_alpha"] = max(rises, default=0.0)
    rises = [at[(a, b2)]["policy"]["multi_rate"] - at[(a, b1)]["policy"]["multi_rate"]
             for a in alphas for b1, b2 in zip(betas, betas[1:])]
    result["largest_multi_rise_with_beta"] = max(rises, default=0.0)
    for name in cells[0].get("decisions", {}) if cells else ():
        theirs = [c["decisions"][name] for c in cells]
        result.setdefault("against", {})[name] = {
            "ahead": sum(t["diff"] > 0 for t in theirs),
            "ahead_by_2se": sum(t["diff"] > 2 * t["se"] for t in theirs),
            "behind_by_2se": sum(t["diff"] < -2 * t["se"] for t in theirs)}
    checks = [abs(v["predicted_f1"] - v["realised_f1"]) for c in cells for v in c.get("estimates", {}).values()]
    if checks:
        result["estimates_within_tolerance"] = sum(d <= ESTIMATE_TOLERANCE for d in checks)
        result["estimates_checked"] = len(checks)
        result["largest_estimate_error"] = max(checks)
    return result
