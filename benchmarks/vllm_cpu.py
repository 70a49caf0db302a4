"""Real vLLM on this CPU: how to serve an adapter, and how long vLLM takes to start.

1. vLLM serving a LoRA adapter vs the same adapter merged into the weights (what
   `askwise vllm-cpu --adapter` does): N concurrent requests of exactly `--tokens` tokens
   (`ignore_eos`), straight to vLLM; a ratio within one run.
2. Start-up: seconds from launching vllm-cpu (`--enforce-eager`, as the tests do) to /health.

The embedded engine against vllm-cpu, and the gateway against vLLM direct, are in serving.py.

    python benchmarks/vllm_cpu.py --concurrency 16 --tokens 64
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

import httpx

from askwise.policy.checkpoints import ensure_base_checkpoint, merged_checkpoint
from askwise.policy.vllm_cpu import VLLMServer

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from helpers import free_port  # noqa: E402

QUESTIONS = ["Who won the world cup?", "When did the bridge open?", "Who wrote the song?",
             "What is the capital?", "How tall is the tower?", "Who is the president?",
             "When was it built?", "Who sang it first?"]


async def fire(url: str, bodies: list[dict]) -> tuple[float, float]:
    """(completion tokens per second, requests per second) for all bodies sent at once."""
    async with httpx.AsyncClient(timeout=600) as client:
        start = time.perf_counter()
        responses = await asyncio.gather(*(client.post(url, json=b) for b in bodies))
        elapsed = time.perf_counter() - start
    for r in responses:
        r.raise_for_status()
    tokens = sum(r.json()["usage"]["completion_tokens"] for r in responses)
    return tokens / elapsed, len(bodies) / elapsed


def random_adapter(base: Path, out: Path) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(base), LoraConfig(
        r=16, lora_alpha=32, init_lora_weights=False,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]))
    model.save_pretrained(out)
    return out


def compare_adapter_serving(base: Path, n: int, tokens: int) -> None:
    def bodies(model: str) -> list[dict]:
        return [{"model": model, "max_tokens": tokens, "ignore_eos": True, "temperature": 0,
                 "messages": [{"role": "user", "content": QUESTIONS[i % len(QUESTIONS)]}]}
                for i in range(n)]

    with tempfile.TemporaryDirectory() as tmp:
        adapter = random_adapter(base, Path(tmp) / "adapter")
        merged = merged_checkpoint(base, adapter, cache=Path(tmp))
        with VLLMServer(model=base, port=free_port(), kv_cache_gib=1,
                        adapters={"policy": adapter}) as vllm:
            url = vllm.base_url + "/chat/completions"
            asyncio.run(fire(url, bodies("policy")[:2]))
            as_adapter = asyncio.run(fire(url, bodies("policy")))
        with VLLMServer(model=merged, served_name="policy", port=free_port(), kv_cache_gib=1) as vllm:
            url = vllm.base_url + "/chat/completions"
            asyncio.run(fire(url, bodies("policy")[:2]))
            as_merged = asyncio.run(fire(url, bodies("policy")))
    print(f"\n{n} concurrent requests of {tokens} tokens straight to vllm-cpu (LoRA r=16, all linear layers)")
    print("| served as | tok/s |\n| --- | --- |")
    print(f"| LoRA adapter (--enable-lora) | {as_adapter[0]:.1f} |")
    print(f"| merged weights | {as_merged[0]:.1f} |")
    print(f"merged / adapter: {as_merged[0] / as_adapter[0]:.2f}x")


def time_startup(base: Path) -> None:
    started = time.perf_counter()
    with VLLMServer(model=base, port=free_port(), kv_cache_gib=1):
        print(f"\nvllm-cpu --enforce-eager: ready after {time.perf_counter() - started:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--only", choices=["adapter", "startup"])
    args = parser.parse_args()
    base = ensure_base_checkpoint()
    if args.only in (None, "adapter"):
        compare_adapter_serving(base, args.concurrency, args.tokens)
    if args.only in (None, "startup"):
        time_startup(base)


if __name__ == "__main__":
    main()
