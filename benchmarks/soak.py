"""Memory under sustained load: the embedded gateway's RSS while 16 clients send prompts of
mixed lengths, up to the context limit, for 20 minutes.

The embedded engine allocates its KV cache once (`--kv-cache-tokens`), so its memory should
follow that setting, not the traffic. This prints the server's RSS over time, its level after
warm-up against its level at the end (the ratio is the claim), and the most it reached
against the budget the settings imply: the model's weights, the KV pool, and an allowance for
the runtime and one step's activations.

    python benchmarks/soak.py --minutes 20 --clients 16
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from helpers import gateway  # noqa: E402  (the tests' own server launcher)

WORDS = ("the store on main street opens at nine and closes at six while the airport store "
         "stays open until midnight every day of the week except public holidays").split()
RUNTIME_ALLOWANCE_MB = 768  # Python, torch, tokenizer, HTTP stack, one step's activations


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def body(rng: random.Random, max_words: int) -> dict:
    """A grounded request whose documents make the prompt anywhere from short to nearly the
    whole context."""
    words = rng.randint(10, max_words)
    text = " ".join(rng.choice(WORDS) for _ in range(words))
    documents = [text[i:i + 2000] for i in range(0, len(text), 2000)]
    return {"preset": rng.choice(["voice", "text", "default"]), "max_tokens": 48,
            "messages": [{"role": "user", "content": "When does the store close?"}],
            "documents": documents}


async def load(url: str, clients: int, until: float, max_words: int, counts: dict) -> None:
    async with httpx.AsyncClient(timeout=600) as client:
        async def worker(seed: int):
            rng = random.Random(seed)
            while time.monotonic() < until:
                response = await client.post(url, json=body(rng, max_words))
                counts[response.status_code] = counts.get(response.status_code, 0) + 1
        await asyncio.gather(*(worker(i) for i in range(clients)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=20)
    parser.add_argument("--warmup-minutes", type=float, default=2)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--max-words", type=int, default=1400, help="longest documents, in words "
                        "(about 1,900 prompt tokens with the instructions: near the 2,048 context)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = gateway(Path(tmp), "--max-in-flight", "64", "--log-level", "warning",
                         "--torch-threads", str(args.threads))
        try:
            idle = rss_mb(server.process.pid)
            start = time.monotonic()
            until = start + args.minutes * 60
            counts: dict[int, int] = {}
            samples: list[tuple[float, float]] = []

            async def sample():
                while time.monotonic() < until:
                    samples.append(((time.monotonic() - start) / 60, rss_mb(server.process.pid)))
                    print(f"{samples[-1][0]:6.1f} min  RSS {samples[-1][1]:7.0f} MB  replies {counts}",
                          flush=True)
                    await asyncio.sleep(30)

            async def both():
                await asyncio.gather(load(server.url + "/v1/chat", args.clients, until,
                                          args.max_words, counts), sample())
            asyncio.run(both())
            end = rss_mb(server.process.pid)
            samples.append(((time.monotonic() - start) / 60, end))
        finally:
            server.stop()
    warm = next(rss for minute, rss in samples if minute >= args.warmup_minutes)
    peak = max(rss for _, rss in samples)
    print(f"\n{args.clients} clients, {args.minutes:g} min, replies by status {counts}; "
          f"KV cache {kv_pool_mb():.0f} MB at the default --kv-cache-tokens")
    print(f"RSS idle after load {idle:.0f} MB, after {args.warmup_minutes:g} min warm-up {warm:.0f} MB, "
          f"at the end {end:.0f} MB: end / warm-up {end / warm:.3f}")
    half = next(rss for minute, rss in samples if minute >= args.minutes / 2)
    print(f"RSS at half time {half:.0f} MB: end / half time {end / half:.3f}")
    print(f"peak {peak:.0f} MB against idle + {RUNTIME_ALLOWANCE_MB} MB runtime allowance "
          f"{idle + RUNTIME_ALLOWANCE_MB:.0f} MB (the idle level holds the weights and the whole "
          f"KV pool, which is allocated at load)")


def kv_pool_mb() -> float:
    """What the server's KV pool takes with the default settings, from the model's config."""
    import json

    from askwise.policy.checkpoints import ensure_base_checkpoint
    from askwise.policy.hardware import cpu_has_native_bf16
    from askwise.server.settings import Settings

    config = json.loads((Path(ensure_base_checkpoint()) / "config.json").read_text())
    kv_heads = config.get("num_key_value_heads", config["num_attention_heads"])
    head_dim = config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"]
    per_token = 2 * config["num_hidden_layers"] * kv_heads * head_dim * (2 if cpu_has_native_bf16() else 4)
    return Settings().kv_cache_tokens * per_token / 2**20


if __name__ == "__main__":
    main()
