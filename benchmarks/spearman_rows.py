"""Which alpha rows hold a policy's Spearman(beta, multi-answer rate) back.

`askwise eval` takes the correlation over all 25 cells at once, so a row whose multi-answer
rate never moves (ties at 0) weighs on it as much as a row that moves the wrong way. From one
`eval.json`, prints the policy's Spearman, then the Spearman it would have if the policy's
multi-answer rates in some alpha rows were the oracle's (the per-item best forced action's,
which maximises reward with the same replies), one row at a time and then every row from the
lowest alpha up to each one. Nothing is replayed: it reads the rates `askwise eval` wrote.

    python benchmarks/spearman_rows.py policy/trained/smollm2-135m-askwise-grounded-lora/eval/ambigqa-dev/eval.json
"""

import argparse
import json

from askwise.training.evaluate import spearman


def spearman_with_oracle_rows(cells: list[dict], rows: set[float]) -> float | None:
    rates = [cell["oracle_actions"]["multi_rate"] if cell["alpha"] in rows else cell["policy"]["multi_rate"]
             for cell in cells]
    return spearman([cell["beta"] for cell in cells], rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("eval_json")
    args = parser.parse_args()
    summary = json.loads(open(args.eval_json).read())
    cells = summary["cells"]
    alphas = sorted({cell["alpha"] for cell in cells})
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


if __name__ == "__main__":
    main()
