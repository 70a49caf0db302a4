"""Which alpha rows hold a policy's Spearman(beta, multi-answer rate) back.

`askwise eval` takes the correlation over all 25 cells at once, so a row whose multi-answer
rate never moves (ties at 0) weighs on it as much as a row that moves the wrong way. From one
`eval.json`, prints the policy's Spearman, then the Spearman it would have if the policy's
multi-answer rates in some alpha rows were the oracle's (the per-item best forced action's,
which maximises reward with the same replies), one row at a time and then every row from the
lowest alpha up to each one. Nothing is replayed: it reads the rates `askwise eval` wrote.

`--rates ALPHA=r1,r2,...` prints the Spearman with one alpha row's rates (lowest beta first)
set by hand, as often as given: what a small change in one row would do.

Last, a ceiling for any policy on the same grid, found by search: the lowest Spearman
reachable when the policy never lists in the k lowest alpha rows, whatever its rates in the
other cells. Rank correlation only sees the order of the 25 rates, so the search runs over
orders: every pattern that depends on beta alone (levels 0-5, never rising with beta;
exhaustive), then a seeded hill climb over per-cell levels (0-7 unless `levels` says more)
from that best and from random starts. It is a search, not a proof; `--ceiling-restarts`
widens it.

    python benchmarks/spearman_rows.py policy/trained/smollm2-135m-askwise-grounded-lora/eval/ambigqa-dev/eval.json
"""

import argparse
import itertools
import json
import random

from askwise.training.evaluate import spearman


def spearman_with_oracle_rows(cells: list[dict], rows: set[float]) -> float | None:
    rates = [cell["oracle_actions"]["multi_rate"] if cell["alpha"] in rows else cell["policy"]["multi_rate"]
             for cell in cells]
    return spearman([cell["beta"] for cell in cells], rates)


def ceiling(alphas: list[float], betas: list[float], zero_rows: int, restarts: int,
            steps: int = 3000, seed: int = 0, levels: int = 8) -> tuple[float, list[list[int]]]:
    """Lowest Spearman(beta, multi-answer rate) found over the grid when the `zero_rows` lowest
    alpha rows never list, and the rate levels (one row per alpha) that reach it."""
    xs = [beta for _ in alphas for beta in betas]

    def rho(rows: list[list[int]]) -> float:
        value = spearman(xs, [level for row in rows for level in row])
        return 1.0 if value is None else value

    free = len(alphas) - zero_rows
    zeros = [[0] * len(betas) for _ in range(zero_rows)]
    best = min(([list(pattern) for _ in range(free)]
                for pattern in itertools.product(range(6), repeat=len(betas))
                if list(pattern) == sorted(pattern, reverse=True)),
               key=lambda rows: rho(zeros + rows))
    rng = random.Random(seed)
    starts = [best] + [[[rng.randrange(levels) for _ in betas] for _ in range(free)] for _ in range(restarts)]
    for rows in starts:
        current, current_rho = [row[:] for row in rows], rho(zeros + rows)
        for _ in range(steps if free else 0):
            trial = [row[:] for row in current]
            trial[rng.randrange(free)][rng.randrange(len(betas))] = rng.randrange(levels)
            if (trial_rho := rho(zeros + trial)) <= current_rho:
                current, current_rho = trial, trial_rho
        if current_rho < rho(zeros + best):
            best = current
    return rho(zeros + best), zeros + best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("eval_json")
    parser.add_argument("--ceiling-restarts", type=int, default=10,
                        help="random starts of the ceiling's hill climb (0: the beta-only patterns only)")
    parser.add_argument("--rates", nargs="+", default=[], metavar="ALPHA=R1,R2,...",
                        help="set one alpha row's multi-answer rates by hand (lowest beta first)")
    args = parser.parse_args()
    summary = json.loads(open(args.eval_json).read())
    cells = summary["cells"]
    alphas = sorted({cell["alpha"] for cell in cells})
    betas = sorted({cell["beta"] for cell in cells})
    if args.rates:
        by_row = {float(alpha): [float(r) for r in rates.split(",")]
                  for alpha, rates in (spec.split("=") for spec in args.rates)}
        rates = [by_row[cell["alpha"]][betas.index(cell["beta"])] if cell["alpha"] in by_row
                 else cell["policy"]["multi_rate"] for cell in cells]
        print(f"policy with {' '.join(args.rates)}: {spearman([cell['beta'] for cell in cells], rates):.3f}")
    print(f"policy: {spearman_with_oracle_rows(cells, set()):.3f}; "
          f"oracle everywhere: {spearman_with_oracle_rows(cells, set(alphas)):.3f}")
    print("| alpha row(s) given the oracle's multi-answer rates | their policy rates | oracle rates | Spearman |")
    print("| --- | --- | --- | --- |")
    for i, alpha in enumerate(alphas):
        for rows in ({alpha}, set(alphas[:i + 1])) if i else ({alpha},):
            row_cells = [cell for cell in cells if cell["alpha"] == alpha]
            policy = " ".join(f"{cell['policy']['multi_rate']:.2f}" for cell in row_cells)
            oracle = " ".join(f"{cell['oracle_actions']['multi_rate']:.2f}" for cell in row_cells)
            label = f"{alpha:g}" if len(rows) == 1 else f"{min(rows):g} to {alpha:g}"
            print(f"| {label} | {policy if len(rows) == 1 else ''} | {oracle if len(rows) == 1 else ''} "
                  f"| {spearman_with_oracle_rows(cells, rows):.3f} |")

    print()
    print("| alpha rows that never list | lowest Spearman any policy reaches (search) | rates by level, one row per alpha |")
    print("| --- | --- | --- |")
    for k in range(len(alphas)):
        value, rows = ceiling(alphas, betas, k, args.ceiling_restarts)
        label = "none" if not k else f"{alphas[0]:g}" + (f" to {alphas[k - 1]:g}" if k > 1 else "")
        print(f"| {label} | {value:.3f} | {' / '.join(''.join(map(str, row)) for row in rows)} |")


if __name__ == "__main__":
    main()
