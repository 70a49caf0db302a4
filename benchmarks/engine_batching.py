"""Does the embedded engine batch concurrent requests? Ratio of throughput, one run.

Sends N requests one after another, then the same N at once, to the in-process
TransformersEngine (greedy), and prints tokens/s for both, their ratio, and how many of the N
concurrent replies equal their one-at-a-time reply (batching must not change greedy text beyond
rounding). Absolute numbers vary with the machine's load; the ratio, measured within one run,
is the claim.

    python benchmarks/engine_batching.py --requests 8 --tokens 32 --dtypes float32 bfloat16
    python benchmarks/engine_batching.py --device cuda --requests 8 64 256 --tokens 64
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


async def serial_rate(engine: TransformersEngine, tokens: int, requests: int = 8) -> tuple[float, list[str]]:
    """One request at a time: the rate does not depend on how many, so a few suffice."""
    params = SamplingParams(max_tokens=tokens)
    await engine.complete(chat(0), SamplingParams(max_tokens=4))  # warm-up
    start = time.perf_counter()
    done = [await engine.complete(chat(i), params) for i in range(requests)]
    return sum(c.completion_tokens for c in done) / (time.perf_counter() - start), [c.text for c in done]


async def concurrent_rate(engine: TransformersEngine, tokens: int, requests: int) -> tuple[float, list[str]]:
    start = time.perf_counter()
    done = await engine.complete_batch([chat(i) for i in range(requests)], SamplingParams(max_tokens=tokens))
    return sum(c.completion_tokens for c in done) / (time.perf_counter() - start), [c.text for c in done]


def chat(i: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"Write a short story about {TOPICS[i % len(TOPICS)]}."}]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, nargs="+", default=[8])
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtypes", nargs="+", default=["auto"])
    args = parser.parse_args()
    checkpoint = ensure_base_checkpoint()
    print(f"{args.tokens} tokens per request, device {args.device}, {args.threads} torch thread(s)")
    print("| dtype | requests | serial tok/s | concurrent tok/s | concurrent / serial | same text as serial |")
    print("| --- | --- | --- | --- | --- | --- |")
    for dtype in args.dtypes:
        engine = TransformersEngine(checkpoint, dtype=dtype, device=args.device, threads=args.threads,
                                    max_batch_size=max(args.requests), batch_wait_s=0.02,
                                    max_model_len=1024)
        engine.wait_ready(600)
        serial, serial_texts = asyncio.run(serial_rate(engine, args.tokens))
        for requests in args.requests:
            batched, texts = asyncio.run(concurrent_rate(engine, args.tokens, requests))
            # Same prompt, same greedy text? (topics repeat every 16 requests)
            same = sum(t == serial_texts[i % len(serial_texts)] for i, t in enumerate(texts)
                       if i % len(TOPICS) < len(serial_texts))
            checked = sum(1 for i in range(requests) if i % len(TOPICS) < len(serial_texts))
            print(f"| {dtype} ({engine.model.dtype}) | {requests} | {serial:.1f} | {batched:.1f} | "
                  f"{batched / serial:.2f}x | {same}/{checked} |", flush=True)
        asyncio.run(engine.aclose())


if __name__ == "__main__":
    main()
