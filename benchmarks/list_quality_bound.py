"""Would better lists make reward maximisation meet Spearman(beta, multi-answer rate) <= -0.8?

The oracle (per item, the best of a checkpoint's forced answer, question and list) is what
maximising reward with that checkpoint's replies asks for, and `askwise eval` reports its
Spearman. This rescores the same forced episodes with the lists made better, replaying
nothing:
- played: as `askwise eval` scores them (the user picks the line by its label);
- best line: each reading's user takes the line that answers it best, as if every label
  were right (the same answers, the same words);
- perfect: every list answers every reading (F1 1) at the words it has: as far as better
  lists of these lengths could go.
For each it prints the oracle's multi-answer rate per cell and its two Spearman correlations
over the grid (by default `askwise eval`'s 5x5; the folder's own config gives the items).
`--list-words-scale 0.5` also prices every list at half its words (rounded): shorter lists.

    mkdir runs/forced-v13 && tar xzf benchmarks/results/forced-v13-dev-200.tar.gz -C runs/forced-v13
    python benchmarks/list_quality_bound.py runs/forced-v13   # v13's forced episodes, 200 dev items
"""

import argparse
import json
from pathlib import Path

from askwise.policy import Action, Costs
from askwise.policy.reward import reward
from askwise.training.episodes import Episode, load_episodes
from askwise.training.evaluate import FIXED, EvalConfig, list_best_line_f1, load_items, oracle, spearman


def list_f1(episode: Episode, item, scenario: str) -> float:
    """F1 in expectation over the user's intent (as `Episode.outcome` takes it)."""
    if scenario == "played" or Action(episode.forced) is not Action.MULTI_ANSWER:
        return episode.expected_f1(item)
    if scenario == "perfect":
        return 1.0
    picked = episode.f1_by_intent or [episode.f1] * len(item.interpretations)
    # The best line is never worse than the line picked, which also covers a reply with no
    # parseable lines.
    return sum(r.probability * max(list_best_line_f1(episode, item, j), picked[j])
               for j, r in enumerate(item.interpretations))


def words(episode: Episode, list_scale: float) -> int:
    if Action(episode.forced) is Action.MULTI_ANSWER:
        return round(episode.words * list_scale)
    return episode.words


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("eval_dir", type=Path, help="an `askwise eval` folder with episodes-always-*.jsonl")
    parser.add_argument("--alphas", type=float, nargs="+", default=EvalConfig().alphas)
    parser.add_argument("--betas", type=float, nargs="+", default=EvalConfig().betas)
    parser.add_argument("--list-words-scale", type=float, default=1.0,
                        help="price each forced list at this fraction of its words")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()
    config = EvalConfig.model_validate(json.loads((args.eval_dir / "eval_config.json").read_text()))
    items = {item.id: item for item in load_items(config)}
    forced = {name: [e for e in load_episodes(args.eval_dir / f"episodes-{name}.jsonl") if e.item_id in items]
              for name in FIXED}
    grid = [Costs(alpha=a, beta=b) for a in args.alphas for b in args.betas]
    print(f"{len(items)} items of {config.dataset} {config.split}, forced episodes of {config.adapter}")
    results = {}
    for scenario in ("played", "best line", "perfect"):
        f1 = {name: {e.item_id: list_f1(e, items[e.item_id], scenario) for e in eps} for name, eps in forced.items()}
        cells = []
        for costs in grid:
            fixed = {name: {e.item_id: reward(f1[name][e.item_id], e.questions, words(e, args.list_words_scale), costs)
                            for e in eps}
                     for name, eps in forced.items()}
            cells.append({"alpha": costs.alpha, "beta": costs.beta, **oracle(fixed)})
        results[scenario] = {
            "spearman_beta_multi": spearman([c["beta"] for c in cells], [c["multi_rate"] for c in cells]),
            "spearman_alpha_clarify": spearman([c["alpha"] for c in cells], [c["clarify_rate"] for c in cells]),
            "cells": cells}
        ambiguous = [i for i in items.values() if len(i.interpretations) > 1]
        lists = sum(f1["always-multi"][i.id] for i in ambiguous) / max(1, len(ambiguous))
        print(f"\n{scenario}: forced lists' F1 on {len(ambiguous)} ambiguous items {lists:.3f}; "
              f"oracle Spearman(beta, multi) {results[scenario]['spearman_beta_multi']:+.3f}, "
              f"Spearman(alpha, clarify) {results[scenario]['spearman_alpha_clarify']:+.3f}")
        print("oracle multi-answer rate | " + " | ".join(f"beta {b:g}" for b in args.betas))
        for a in args.alphas:
            row = [c["multi_rate"] for c in cells if c["alpha"] == a]
            print(f"alpha {a:g} | " + " | ".join(f"{r:.2f}" for r in row))
    if args.json:
        args.json.write_text(json.dumps({"eval_dir": str(args.eval_dir), "items": len(items),
                                         "list_words_scale": args.list_words_scale, **results}, indent=1))


if __name__ == "__main__":
    main()
