"""Where the embedded engine's memory goes under load: RSS against live tensors, per round.

    python dev/engine_memory_probe.py --rounds 8 --dtype bfloat16
    python dev/engine_memory_probe.py --rounds 8 --dtype float32

Runs the in-process engine (no server) on rounds of 16 concurrent grounded prompts of mixed
length, like benchmarks/soak.py, and after each round prints the process's RSS and the bytes
held by live CPU tensors (the weights and the KV pool). RSS rising while live tensors stay
flat is native memory outside tensors: allocator fragmentation or kernel caches.
"""

import argparse
import asyncio
import gc
import os
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from soak import WORDS, rss_mb  # noqa: E402  (the soak benchmark's prompts and RSS reader)

from askwise.policy import Costs, Document, Turn, render_prompt  # noqa: E402
from askwise.policy.checkpoints import ensure_base_checkpoint  # noqa: E402
from askwise.policy.engines.base import SamplingParams  # noqa: E402
from askwise.policy.engines.transformers_engine import TransformersEngine  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    import torch

    engine = TransformersEngine(ensure_base_checkpoint(), threads=args.threads, dtype=args.dtype).start()
    engine.wait_ready(600)
    rng = random.Random(0)

    def messages():
        text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(10, 1400)))
        docs = [Document(text[i:i + 2000]) for i in range(0, len(text), 2000)]
        return render_prompt([Turn("user", "When does the store close?")], Costs(alpha=0.1, beta=0.01), docs)

    async def one_round():
        await asyncio.gather(*(engine.complete(messages(), SamplingParams(max_tokens=48)) for _ in range(16)))

    for number in range(args.rounds):
        asyncio.run(one_round())
        gc.collect()
        tensors = [o for o in gc.get_objects() if isinstance(o, torch.Tensor) and o.device.type == "cpu"]
        held = sum(t.untyped_storage().nbytes() for t in tensors) / 2**20
        print(f"round {number}: RSS {rss_mb(os.getpid()):.0f} MB, live tensors {held:.0f} MB", flush=True)


if __name__ == "__main__":
    main()
