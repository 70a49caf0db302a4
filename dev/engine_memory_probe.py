"""Where the embedded engine's memory goes under load: RSS against live tensors, per round.

    python dev/engine_memory_probe.py --rounds 8 --dtype bfloat16
    python dev/engine_memory_probe.py --rounds 8 --dtype float32

Runs the in-process engine (no server) on rounds of 16 concurrent grounded prompts of mixed
length, like benchmarks/soak.py, and after each round prints the process's RSS and the bytes
held by live CPU tensors (the weights and the KV pool), and glibc's bytes in use and free.
RSS rising while live tensors stay flat is native memory outside tensors: with malloc's bytes
in use rising too, something is kept (kernel caches); with its free bytes rising, the heap
fragments (`--trim` shows what malloc_trim would give back).
"""

import argparse
import asyncio
import ctypes
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
from askwise.policy.hardware import glibc, trim_heap  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--trim", action="store_true", help="call glibc's malloc_trim(0) after each round")
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
        rss = rss_mb(os.getpid())
        heap = malloc_info()
        line = (f"round {number}: RSS {rss:.0f} MB, live tensors {held:.0f} MB, "
                f"malloc in use {heap[0]:.0f} MB, free in heap {heap[1]:.0f} MB")
        if args.trim:
            trim_heap()
            line += f", RSS after malloc_trim {rss_mb(os.getpid()):.0f} MB"
        print(line, flush=True)


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]


def malloc_info() -> tuple[float, float]:
    """glibc's view over all arenas: bytes in use (heap plus mmapped) and free bytes it holds."""
    libc = glibc()
    if libc is None:
        sys.exit("this probe reads glibc's allocator statistics: glibc only")
    libc.mallinfo2.restype = _MallInfo2
    info = libc.mallinfo2()
    return (info.uordblks + info.hblkhd) / 2**20, info.fordblks / 2**20


if __name__ == "__main__":
    main()
