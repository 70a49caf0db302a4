"""What redrawing questions costs a request (one that repeats an option, never ends, or offers
options the documents do not ground; policy/questions.py): the embedded gateway with
`--question-redraws 8` (the default) against the same gateway with 0, on the same AmbigQA
dev-selection requests (questions and documents) at the `careful` preset, where the policy
asks about half the time.

Both gateways run at once, one torch thread each, and requests alternate between them one
at a time, so drift on a noisy machine hits both. Prints mean and median latency over all
requests and over the requests whose question the check flagged (a redraw ran), and the
ratio of the mean latency with redraws to without.

    python benchmarks/question_redraws.py --items 60
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
from calibration_loop import ambigqa_requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from helpers import gateway, metric  # noqa: E402  (the tests' own server launcher)

REDRAWN = 'askwise_question_redraws_total{outcome="replaced"}'
KEPT = 'askwise_question_redraws_total{outcome="kept"}'


def timed(url: str, body: dict) -> tuple[float, dict]:
    sent = time.perf_counter()
    response = httpx.post(url + "/v1/chat", json=body, timeout=600)
    response.raise_for_status()
    return time.perf_counter() - sent, response.json()


def redraws(url: str) -> float:
    return metric(url, REDRAWN) + metric(url, KEPT)


def summary(name: str, latencies: list[float]) -> str:
    return (f"| {name} | {len(latencies)} | {1000 * statistics.mean(latencies):.0f} | "
            f"{1000 * statistics.median(latencies):.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=60)
    parser.add_argument("--preset", default="careful")
    args = parser.parse_args()
    requests = [{**r, "preset": args.preset} for r in ambigqa_requests("dev-selection", args.items)]
    with tempfile.TemporaryDirectory() as tmp:
        logs = Path(tmp)
        on = gateway(logs, "--question-redraws", "8")
        off = gateway(logs, "--question-redraws", "0")
        try:
            timed(on.url, requests[0]), timed(off.url, requests[0])  # warm both
            rows = {"with": [], "without": [], "with, flagged": [], "without, flagged": []}
            questions = 0
            for i, body in enumerate(requests):
                order = [(on, "with"), (off, "without")][:: 1 if i % 2 == 0 else -1]
                before = redraws(on.url)
                took = {}
                for server, name in order:
                    took[name], reply = timed(server.url, body)
                    if name == "with":
                        questions += reply["action"] == "clarify"
                rows["with"].append(took["with"])
                rows["without"].append(took["without"])
                if redraws(on.url) > before:
                    rows["with, flagged"].append(took["with"])
                    rows["without, flagged"].append(took["without"])
                print(f"\r{i + 1}/{len(requests)} requests", end="", file=sys.stderr)
            print(file=sys.stderr)
        finally:
            on.stop()
            off.stop()
    flagged = len(rows["with, flagged"])
    print(f"{len(requests)} AmbigQA dev-selection requests at preset {args.preset}: "
          f"{questions} questions, {flagged} flagged and redrawn\n")
    print("| gateway | requests | mean ms | median ms |\n| --- | --- | --- | --- |")
    for name, latencies in rows.items():
        if latencies:
            print(summary(name, latencies))
    ratio = statistics.mean(rows["with"]) / statistics.mean(rows["without"])
    print(f"\nmean latency with redraws / without, all requests: {ratio:.2f}x")
    if flagged:
        ratio = statistics.mean(rows["with, flagged"]) / statistics.mean(rows["without, flagged"])
        print(f"... on the requests whose question was redrawn: {ratio:.2f}x")


if __name__ == "__main__":
    main()
