"""Padding steps to a few shapes in bf16: throughput and memory against exact shapes, one run.

PyTorch's bf16 CPU kernels compile and keep a kernel for every new shape, and the embedded
engine's ragged steps change shape every step. The engine pads them to a few sizes
(`policy/engines/kv_cache.py`, `bucket`). This runs rounds of 16 concurrent grounded prompts
of mixed length (as `soak.py` sends) through the in-process engine with and without the
padding, each condition in its own process (the caches are per process), alternating, and
prints tokens/s and RSS growth per round for both, and their ratios.

    python benchmarks/shape_buckets.py --rounds 6 --repeats 2
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from soak import WORDS, rss_mb  # noqa: E402  (the soak benchmark's prompts and RSS reader)


def worker(buckets: bool, rounds: int, threads: int, dtype: str) -> dict:
    """One condition in this process: tokens/s over all rounds after the first, and RSS after
    the first round and after the last."""
    from askwise.policy import Costs, Document, Turn, render_prompt
    from askwise.policy.checkpoints import ensure_base_checkpoint
    from askwise.policy.engines.base import SamplingParams
    from askwise.policy.engines.transformers_engine import TransformersEngine

    engine = TransformersEngine(ensure_base_checkpoint(), threads=threads, dtype=dtype,
                                shape_buckets=buckets).start()
    engine.wait_ready(600)
    rng = random.Random(0)  # both conditions send the same prompts

    def messages():
        text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(10, 1400)))
        docs = [Document(text[i:i + 2000]) for i in range(0, len(text), 2000)]
        return render_prompt([Turn("user", "When does the store close?")], Costs(alpha=0.1, beta=0.01), docs)

    async def one_round() -> int:
        done = await asyncio.gather(*(engine.complete(messages(), SamplingParams(max_tokens=48))
                                      for _ in range(16)))
        return sum(c.prompt_tokens + c.completion_tokens for c in done)

    asyncio.run(one_round())
    first_rss = rss_mb(os.getpid())
    start, tokens = time.perf_counter(), 0
    for _ in range(rounds - 1):
        tokens += asyncio.run(one_round())
    return {"tokens_per_s": tokens / (time.perf_counter() - start), "rss_first": first_rss,
            "rss_last": rss_mb(os.getpid()), "rounds": rounds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=6, help="rounds per process (the first warms up)")
    parser.add_argument("--repeats", type=int, default=2, help="processes per condition, alternating")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--worker", choices=["on", "off"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker == "on", args.rounds, args.threads, args.dtype)))
        return

    results: dict[str, list[dict]] = {"on": [], "off": []}
    for repeat in range(args.repeats):
        for condition in ("off", "on"):
            out = subprocess.run([sys.executable, __file__, "--worker", condition, "--rounds", str(args.rounds),
                                  "--threads", str(args.threads), "--dtype", args.dtype],
                                 check=True, capture_output=True, text=True).stdout
            results[condition].append(json.loads(out.strip().splitlines()[-1]))
            r = results[condition][-1]
            print(f"repeat {repeat} buckets {condition}: {r['tokens_per_s']:.0f} prompt+reply tok/s, "
                  f"RSS {r['rss_first']:.0f} -> {r['rss_last']:.0f} MB", flush=True)

    def mean(condition, key):
        return sum(r[key] for r in results[condition]) / len(results[condition])

    def growth(condition):  # MB per round after the first
        return sum((r["rss_last"] - r["rss_first"]) / (r["rounds"] - 1) for r in results[condition]) / len(
            results[condition])

    print(f"\n{args.dtype}, {args.threads} thread(s), rounds of 16 mixed-length prompts, "
          f"{args.rounds - 1} timed rounds x {args.repeats} processes per condition")
    print("| shapes | prompt+reply tok/s | RSS growth MB/round |")
    print("| --- | --- | --- |")
    print(f"| exact | {mean('off', 'tokens_per_s'):.0f} | {growth('off'):.1f} |")
    print(f"| bucketed | {mean('on', 'tokens_per_s'):.0f} | {growth('on'):.1f} |")
    print(f"bucketed / exact tokens/s: {mean('on', 'tokens_per_s') / mean('off', 'tokens_per_s'):.2f}x")


if __name__ == "__main__":
    main()
