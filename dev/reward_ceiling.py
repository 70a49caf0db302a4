"""What choosing the action well could win over the fixed strategies, cell by cell.

    python dev/reward_ceiling.py policy/trained/smollm2-135m-askwise-grounded-lora/eval/ambigqa-dev-test

The fixed strategies play the evaluated checkpoint's own replies with the first action forced,
so a policy can beat them only by choosing its action better per item. This prints, per cell
of an `askwise eval` folder with baselines, the best fixed strategy and three action rules
on those same replies, each paired against the closest fixed strategy (its mean difference
over twice the SE, `z`; `beats` in the evaluation is z > 2):
- the policy itself;
- the readings rule (evaluate.py): the best forced action for each number of readings,
  chosen on these episodes, so a policy that knew how ambiguous each query is;
- the best forced reply per item (the bound): it knows which action pays before acting.
Then how many cells each rule is above every fixed strategy in, and by 2 SE, on these items;
and, for the readings rule, the item count at which its present margins would reach 2 SE
in a given share of cells (SE shrinks as 1/sqrt(items), margins held fixed).
"""

import argparse
import json
import math
from pathlib import Path

from askwise.training.episodes import load_episodes
from askwise.training.evaluate import FIXED, EvalConfig, load_items
from askwise.training.scoring import item_rewards, paired_difference, readings_rule


def episodes_of(folder: Path, name: str):
    for suffix in (".jsonl", ".jsonl.gz"):
        path = folder / f"episodes-{name}{suffix}"
        if path.exists():
            return load_episodes(path)
    raise SystemExit(f"{folder} holds no episodes-{name}.jsonl[.gz]: run `askwise eval` with baselines")


def closest(rewards: dict[str, float], fixed: dict[str, dict[str, float]]) -> tuple[float, float]:
    """(mean difference, z) against the fixed strategy it leads by the fewest SEs."""
    pairs = [paired_difference(rewards, theirs) for theirs in fixed.values()]
    return min(((m, m / s if s > 0 else (math.inf if m > 0 else -math.inf if m < 0 else 0.0))
                for m, s in pairs), key=lambda p: p[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--share", type=float, default=0.6, help="share of cells for the item-count projection")
    args = parser.parse_args()
    config = EvalConfig.model_validate(json.loads((args.folder / "eval_config.json").read_text()))
    items = {item.id: item for item in load_items(config)}
    policy = [e for e in episodes_of(args.folder, "policy") if e.item_id in items]
    forced = {name: [e for e in episodes_of(args.folder, name) if e.item_id in items] for name in FIXED}
    n = len(items)
    counts = {"policy": [0, 0], "readings rule": [0, 0], "bound": [0, 0]}
    rule_z = []
    print(f"{config.split}, {n} items; per cell: best fixed mean, then each rule's mean and z against "
          "the closest fixed strategy")
    for index, costs in enumerate(config.grid()):
        fixed = {name: item_rewards([e for e in eps if e.sample == index], items, costs)
                 for name, eps in forced.items()}
        best = max(fixed, key=lambda name: sum(fixed[name].values()))
        rules = {"policy": item_rewards([e for e in policy if e.sample == index], items, costs),
                 "readings rule": readings_rule(fixed, items)["item_rewards"],
                 "bound": {i: max(fixed[name][i] for name in fixed) for i in fixed[best]}}
        line = [f"alpha={costs.alpha:g} beta={costs.beta:g}: {best} {sum(fixed[best].values()) / n:.3f}"]
        for name, rewards in rules.items():
            margin, z = closest(rewards, fixed)
            counts[name][0] += margin > 0
            counts[name][1] += z > 2
            if name == "readings rule":
                rule_z.append(z)
            line.append(f"{name} {sum(rewards.values()) / n:.3f} (z {z:+.1f})")
        print("; ".join(line))
    cells = len(config.grid())
    for name, (above, by_2se) in counts.items():
        print(f"{name}: above every fixed strategy in {above} of {cells} cells, by 2 SE in {by_2se}")
    needed = math.ceil(args.share * cells)
    positive = sorted((z for z in rule_z if z > 0), reverse=True)
    if len(positive) < needed:
        print(f"readings rule: above every fixed strategy in only {len(positive)} cells, so no item "
              f"count brings {needed} of {cells} to 2 SE with these margins")
    else:
        z = positive[needed - 1]
        print(f"readings rule: {needed} of {cells} cells by 2 SE would take about "
              f"{math.ceil(n * (2 / z) ** 2)} items at these margins ({n} here)")


if __name__ == "__main__":
    main()
