"""Does calibration close the loop? Calibrate on one half of a request set, then play the
other half at the costs found for each target and compare the rates it achieves.

Requests are AmbigQA dev-selection questions with their documents, as an application would
send them (no answers used). The first half is calibrated over the default grid of
`askwise calibrate` with the embedded policy; for each target the solver picks (alpha,
beta); the held-out half is played at those costs. Prints, per target, the costs, the rates
the calibration predicts and the rates achieved on held-out requests, and whether each
targeted rate is within 0.05. Targets the policy cannot reach are listed with the nearest
rates it can.

    python benchmarks/calibration_loop.py --items 200
    python benchmarks/calibration_loop.py --write-requests ambigqa-dev-selection.jsonl --items 200

The second form only writes the requests file (the shipped calibration is made from it with
`askwise calibrate`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
from pathlib import Path

TARGETS = ["clarify=0.05", "clarify=0.1", "clarify=0.2", "clarify=0.3", "clarify=0.5",
           "clarify=0.1,multi=0", "multi=0.05", "multi=0.1", "multi=0.2", "multi=0.5"]
TOLERANCE = 0.05


def ambigqa_requests(split: str, items: int) -> list[dict]:
    """AmbigQA questions with their documents, as /v1/chat bodies."""
    from askwise.training.data import load_ambigqa

    return [{"messages": [{"role": "user", "content": item.query}],
             "documents": [{"title": d.title, "text": d.text} for d in item.documents]}
            for item in load_ambigqa(split, limit=items)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=200, help="requests in all, half to calibrate on")
    parser.add_argument("--split", default="dev-selection")
    parser.add_argument("--targets", nargs="+", default=TARGETS)
    parser.add_argument("--torch-threads", type=int, default=2)
    parser.add_argument("--work-dir", type=Path, default=None,
                        help="keep records here (resumable); default: a temporary folder")
    parser.add_argument("--write-requests", type=Path, default=None, help="only write the requests file")
    args = parser.parse_args()
    requests = ambigqa_requests(args.split, args.items)
    if args.write_requests:
        args.write_requests.write_text("".join(json.dumps(r) + "\n" for r in requests))
        print(f"{len(requests)} requests: {args.write_requests}")
        return
    with tempfile.TemporaryDirectory() as tmp:
        run(requests, args, args.work_dir or Path(tmp))


def run(requests: list[dict], args: argparse.Namespace, work: Path) -> None:
    from askwise.policy.calibrate import (
        DEFAULT_ALPHAS,
        DEFAULT_BETAS,
        FINE_ALPHAS,
        FINE_BETAS,
        EmbeddedTurns,
        build,
        measure,
    )
    from askwise.policy.calibration import CalibrationError, parse_target

    work.mkdir(parents=True, exist_ok=True)
    half = len(requests) // 2
    calibrate_on, held_out = requests[:half], requests[half:]
    turns = EmbeddedTurns(argparse.Namespace(adapter=None, base_model=None, dtype="auto",
                                             torch_threads=args.torch_threads, decision="auto"))
    value = turns.source["decision"] == "value"
    alphas, betas = (list(FINE_ALPHAS), list(FINE_BETAS)) if value else (list(DEFAULT_ALPHAS), list(DEFAULT_BETAS))

    async def go():
        try:
            records = await measure(turns, calibrate_on, alphas, betas, work / "calibrate.records.jsonl", 32)
            # The same source `askwise calibrate` writes (the adapter's sha256 among it), so the
            # calibration half is the file a shipped adapter carries, as it is.
            source = {**turns.source, "count": half, "requests": (
                f"AmbigQA {args.split}, the first {half} items with their documents "
                f"(python benchmarks/calibration_loop.py --items {len(requests)}, calibration half)")}
            calibration = build(records, alphas, betas, source)
            rows = []
            held_out_path = work / "held-out.records.jsonl"
            if value:
                # One reply per held-out request says what the server does at every grid pair
                # (the solver keeps to measured pairs), as on the calibration half.
                await measure(turns, held_out, alphas, betas, held_out_path, 32)
            for text in args.targets:
                target = parse_target(text)
                try:
                    solution = calibration.solve(target, TOLERANCE)
                except CalibrationError as exc:
                    rows.append((text, None, str(exc)))
                    continue
                played = await measure(turns, held_out, [solution.alpha], [solution.beta], held_out_path, 32)
                achieved = {a: sum(r["action"] == a for r in played) / len(played) for a in solution.predicted}
                rows.append((text, solution, achieved))
            return calibration, rows
        finally:
            await turns.aclose()

    calibration, rows = asyncio.run(go())
    calibration.save(work / "calibration.json")
    print(f"\nCalibrated on {half} {args.split} requests ({len(alphas)} x {len(betas)} cost pairs), "
          f"held out {len(held_out)}; embedded shipped policy, decision by {turns.source['decision']}\n")
    print("| target | alpha | beta | predicted clarify / multi | achieved clarify / multi (held out) | "
          "within 0.05 |")
    print("| --- | --- | --- | --- | --- | --- |")
    met = reachable = 0
    for text, solution, result in rows:
        if solution is None:
            print(f"| {text} | - | - | unreachable: {result.split('; ')[-1]} | | |")
            continue
        reachable += 1
        target = parse_target(text)
        ok = all(abs(result[a] - rate) <= TOLERANCE for a, rate in target.items())
        met += ok
        print(f"| {text} | {solution.alpha:g} | {solution.beta:g} | "
              f"{solution.predicted['clarify']:.2f} / {solution.predicted['multi_answer']:.2f} | "
              f"{result['clarify']:.2f} / {result['multi_answer']:.2f} | {'yes' if ok else 'no'} |")
    print(f"\n{met} of {reachable} reachable targets met within {TOLERANCE} on held-out requests")


if __name__ == "__main__":
    main()
