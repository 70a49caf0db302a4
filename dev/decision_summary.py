"""The numbers the README and docs/results.md quote for an evaluation of the value decision,
read from its eval.json (`askwise eval` writes it; a committed report rebuilds it).

    python dev/decision_summary.py policy/trained/smollm2-135m-askwise-grounded-lora/eval/ambigqa-dev-test

Prints: the cells against the policy's own tag on the same replies, against the best fixed
strategy (never behind by more than 1 paired SE; ahead by more than 2) and the readings rule,
and the cells where the readings rule itself is ahead of every fixed strategy by 2 SE;
whether the rates follow the costs; the clarify rates on ambiguous and single-reading items
at the voice preset's costs and at alpha 0.1; the estimates' largest error; and the mean
reward per cell of both decisions and the best fixed strategy, as a Markdown table.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def at(cells: list[dict], alpha: float, beta: float) -> dict | None:
    return next((c for c in cells if c["alpha"] == alpha and c["beta"] == beta), None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("evals", nargs="+", type=Path, help="evaluation folders (with eval.json)")
    args = parser.parse_args()
    for folder in args.evals:
        summary = json.loads((folder / "eval.json").read_text())
        cells, t = summary["cells"], summary["targets"]
        n = len(cells)
        print(f"## {folder} ({summary['split']}, {summary['items']} items, "
              f"{summary['ambiguous_items']} ambiguous, decision by {summary['decision']})\n")
        for name, counts in t.get("against", {}).items():
            print(f"- against the decision by {name}: ahead in {counts['ahead']} of {n} cells, by more than "
                  f"2 SE in {counts['ahead_by_2se']}, behind by more than 2 SE in {counts['behind_by_2se']}")
        print(f"- against the best fixed strategy: not behind by more than 1 SE in "
              f"{t['never_behind_best_fixed']} of {n}, ahead by more than 2 SE in "
              f"{t['ahead_of_best_fixed_by_2se']}")
        print(f"- at or above the readings rule in {t['at_least_readings_rule']} of {n}")
        # the room: where even a rule that knows how many readings each item has, fitted on
        # these very episodes, is ahead of every fixed strategy by more than 2 SE
        oracle = [c for c in cells if c["readings_rule"]["beats_fixed"]]
        mine = sum(c["best_fixed"]["diff"] > 2 * c["best_fixed"]["se"] for c in oracle)
        print(f"- the readings rule is ahead of every fixed strategy by more than 2 SE in {len(oracle)} "
              f"of {n}; this decision is ahead of the best fixed by more than 2 SE in {mine} of those")
        print(f"- largest rise of the clarify rate with alpha {t['largest_clarify_rise_with_alpha']:+.3f}, "
              f"of the multi-answer rate with beta {t['largest_multi_rise_with_beta']:+.3f}")
        if "estimates_checked" in t:
            print(f"- mean predicted F1 within 0.05 of the realised in {t['estimates_within_tolerance']} of "
                  f"{t['estimates_checked']} (action, cell) pairs; largest error {t['largest_estimate_error']:.3f}")
        for alpha, beta, label in ((0.05, 0.02, "voice (0.05, 0.02)"), (0.1, 0.005, "(0.1, 0.005)"),
                                   (0.1, 0.002, "(0.1, 0.002)"), (0.1, 0.001, "(0.1, 0.001)")):
            cell = at(cells, alpha, beta)
            if cell:
                p = cell["policy"]
                print(f"- {label}: clarify on {p['ambiguous_clarify']:.0%} of ambiguous items, "
                      f"{p['single_clarify']:.0%} of single-reading ones")
        others = list(cells[0].get("decisions", {}))
        print("\n| alpha | beta | value decision | " + " | ".join(f"decision by {o}" for o in others)
              + " | best fixed | value - best fixed (SE) | clarify / multi rate |")
        print("| --- | --- | --- |" + " --- |" * len(others) + " --- | --- | --- |")
        for c in cells:
            row = [f"{c['alpha']:g}", f"{c['beta']:g}", f"{c['policy']['reward']:.3f}"]
            row += [f"{c['decisions'][o]['reward']:.3f}" for o in others]
            best = c["best_fixed"]
            row += [f"{best['reward']:.3f} ({best['name']})", f"{best['diff']:+.3f} ({best['se']:.3f})",
                    f"{c['policy']['clarify_rate']:.2f} / {c['policy']['multi_rate']:.2f}"]
            print("| " + " | ".join(row) + " |")
        print()


if __name__ == "__main__":
    main()
