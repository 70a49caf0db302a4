"""Two checkpoints' evaluations against each other, paired on the same items and intents.

    python dev/compare_evals.py runs/eval-new runs/eval-old

Both folders must come from `askwise eval` with the same dataset, items and seed (the
intents are drawn per item from the seed, so the same item meets the same intent in every
cell of both). Their grids may differ: the cells both hold are paired (a candidate evaluated
on two rows pairs with the shipped policy's full grid). For every such cell it prints the
mean per-item reward difference (first minus second) and its standard error, then how
many cells the first is ahead in, and ahead or behind by more than twice the SE: the test
`askwise eval` uses against baselines.

The episodes may be plain (`episodes-policy.jsonl`, a run folder) or gzipped (`.jsonl.gz`,
as a shipped adapter's `eval/` folder commits them), so a candidate pairs with the shipped
policy's committed report directly. An evaluation that played every first action forced
(the default) holds no policy episodes: its decision's are the forced episodes it picked,
by the value head's estimates (`estimates.json`) or else by the policy's tag. Where either
folder holds no episodes (older reports kept only `eval.json`), it compares the cells' mean
rewards unpaired, with no SE, and says so.
"""

import argparse
import json
from pathlib import Path

from askwise.training.decisions import chosen_episodes, policy_choices, value_choices
from askwise.training.episodes import Episode, load_episodes
from askwise.training.evaluate import EvalConfig, load_items
from askwise.training.scoring import FIXED, beats, item_rewards, paired_difference


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("first", type=Path)
    parser.add_argument("second", type=Path)
    args = parser.parse_args()
    configs = [EvalConfig.model_validate(json.loads((d / "eval_config.json").read_text()))
               for d in (args.first, args.second)]
    keys = ("dataset", "split", "items", "setting", "seed")
    if any(getattr(configs[0], k) != getattr(configs[1], k) for k in keys):
        parser.error(f"the two evaluations differ in one of {keys}: nothing to pair")
    decided = [decided_episodes(d, c) for d, c in zip((args.first, args.second), configs)]
    if None in decided:
        unpaired(args.first, args.second)
        return
    items = {item.id: item for item in load_items(configs[0])}
    # A folder may hold episodes of items beyond its config's (an evaluation resumed with
    # fewer --items keeps what the longer run played); only the config's items pair.
    episodes = [[e for e in eps if e.item_id in items] for eps in decided]
    grids = [config.grid() for config in configs]
    shared = [costs for costs in grids[0] if costs in grids[1]]
    if not shared:
        parser.error("the two evaluations share no cell")
    ahead = ahead_2se = behind_2se = 0
    for costs in shared:
        # An episode's sample is its cell's index in its own evaluation's grid.
        first, second = (item_rewards([e for e in eps if e.sample == index], items, costs)
                         for eps, index in zip(episodes, (grid.index(costs) for grid in grids)))
        diff = paired_difference(first, second)
        if diff is None:
            parser.error(f"cell {costs} holds fewer than two paired items")
        mean, se = diff
        ahead += mean > 0
        ahead_2se += beats(first, second)
        behind_2se += beats(second, first)
        print(f"alpha={costs.alpha:g} beta={costs.beta:g}: {mean:+.3f} (SE {se:.3f})")
    cells = len(shared)
    print(f"first ahead in {ahead} of {cells} cells; by more than 2 SE in {ahead_2se}; "
          f"behind by more than 2 SE in {behind_2se}")


def saved(folder: Path, name: str) -> Path | None:
    """A run's episodes in an evaluation folder, plain or gzipped; None if neither."""
    for path in (folder / f"episodes-{name}.jsonl", folder / f"episodes-{name}.jsonl.gz"):
        if path.exists():
            return path
    return None


def decided_episodes(folder: Path, config: EvalConfig) -> list[Episode] | None:
    """The evaluated decision's episodes: the policy's own, or the forced ones it picked."""
    if (path := saved(folder, "policy")) is not None:
        return load_episodes(path)
    paths = {name: saved(folder, name) for name in FIXED}
    if None in paths.values():
        return None
    forced = {name: load_episodes(path) for name, path in paths.items()}
    if (folder / "estimates.json").exists():
        estimates = json.loads((folder / "estimates.json").read_text())["items"]
        return chosen_episodes(forced, value_choices(estimates, config.grid(), config.max_questions))
    return chosen_episodes(forced, policy_choices(forced["always-answer"]))


def unpaired(first: Path, second: Path) -> None:
    cells = [json.loads((d / "eval.json").read_text())["cells"] for d in (first, second)]
    print("episodes not on disk: unpaired differences of the cells' mean rewards, no SE")
    theirs = {(c["alpha"], c["beta"]): c for c in cells[1]}
    pairs = [(mine, theirs[mine["alpha"], mine["beta"]]) for mine in cells[0]
             if (mine["alpha"], mine["beta"]) in theirs]
    ahead = 0
    for mine, other in pairs:
        diff = mine["policy"]["reward"] - other["policy"]["reward"]
        ahead += diff > 0
        print(f"alpha={mine['alpha']:g} beta={mine['beta']:g}: {diff:+.3f}")
    print(f"first ahead in {ahead} of {len(pairs)} cells")


if __name__ == "__main__":
    main()
