"""Does the embedded engine batch concurrent requests? Ratio of throughput, one run.

Sends N requests one after another, then the same N at once, to the in-process
TransformersEngine (greedy, fixed length), and prints tokens/s for both and their ratio.
Optionally repeats for another dtype. Absolute numbers vary with the machine's load; the
ratio, measured within one run, is the claim.

    python benchmarks/engine_batching.py --requests 8 --tokens 32 --dtypes float32 bfloat16
"""

from __future__ import annotations

import argparse
import asyncio
import time

from askwise.policy.checkpoints import ensure_base_checkpoint
from askwise.policy.engines import SamplingParams
from askwise.policy.engines.transformers_engine import TransformersEngine


TOPICS = ["the sea", "a city", "a cat", "the moon", "a train", "rain", "a forest", "music",
          "a bridge", "winter", "a library", "the desert", "a garden", "a storm", "a river", "bread"]


async def measure(engine: TransformersEngine, requests: int, tokens: int) -> tuple[float, float]:
    params = SamplingParams(max_tokens=tokens)
    chats = [[{"role": "user", "content": f"Write a short story about {TOPICS[i % len(TOPICS)]}."}]
             for i in range(requests)]
    await engine.complete(chats[0], SamplingParams(max_tokens=4))  # warm-up
    start = time.perf_counter()
    serial = [await engine.complete(c, params) for c in chats]
    serial_tps = sum(c.completion_tokens for c in serial) / (time.perf_counter() - start)
    start = time.perf_counter()
    batched = await engine.complete_batch(chats, params)
    batched_tps = sum(c.completion_tokens for c in batched) / (time.perf_counter() - start)
    return serial_tps, batched_tps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--dtypes", nargs="+", default=["float32"])
    args = parser.parse_args()
    checkpoint = ensure_base_checkpoint()
    print(f"{args.requests} requests x {args.tokens} tokens, {args.threads} torch thread(s)")
    print("| dtype | serial tok/s | concurrent tok/s | concurrent / serial |")
    print("| --- | --- | --- | --- |")
    for dtype in args.dtypes:
        engine = TransformersEngine(checkpoint, dtype=dtype, threads=args.threads,
                                    max_batch_size=args.requests, batch_wait_s=0.02)
        engine.wait_ready(600)
        serial, batched = asyncio.run(measure(engine, args.requests, args.tokens))
        asyncio.run(engine.aclose())
        print(f"| {dtype} | {serial:.1f} | {batched:.1f} | {batched / serial:.2f}x |")


if __name__ == "__main__":
    main()
