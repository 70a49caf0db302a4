"""Continuous batching on a CPU: transformers' own generator against one padded `generate`
and against askwise's embedded engine, on the same prompts, in one run.

The embedded engine needs continuous batching (requests join and leave a running batch).
transformers ships one (`generate_batch`, paged KV cache); this measures whether it serves
on a small CPU before askwise uses its own scheduler. All three decode greedily in float32.

    python benchmarks/continuous_batching.py --prompts 32 --tokens 32 --threads 2
"""

from __future__ import annotations

import argparse
import asyncio
import time

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

from askwise.policy.checkpoints import ensure_base_checkpoint
from askwise.policy.engines import SamplingParams
from askwise.policy.engines.transformers_engine import TransformersEngine

TOPICS = ["the sea", "a city", "a cat", "the moon", "a train", "rain", "a forest", "music",
          "a bridge", "winter", "a library", "the desert", "a garden", "a storm", "a river", "bread"]


def chats(n: int) -> list[list[dict[str, str]]]:
    return [[{"role": "user", "content": f"Write a short story about {TOPICS[i % len(TOPICS)]}."}]
            for i in range(n)]


def padded_generate(path, tokenizer, prompts, tokens) -> float:
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    tokenizer.padding_side = "left"
    batch = tokenizer.apply_chat_template(prompts, add_generation_prompt=True, padding=True,
                                          return_tensors="pt", return_dict=True)
    config = GenerationConfig(max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False,
                              pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id)
    with torch.inference_mode():
        model.generate(**{k: v[:2] for k, v in batch.items()}, generation_config=config)  # warm-up
        start = time.perf_counter()
        out = model.generate(**batch, generation_config=config)
    elapsed = time.perf_counter() - start
    return (out.shape[1] - batch["input_ids"].shape[1]) * len(prompts) / elapsed


def transformers_continuous(path, tokenizer, prompts, tokens) -> float:
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32,
                                                 attn_implementation="paged|sdpa").eval()
    inputs = [tokenizer.apply_chat_template(p, add_generation_prompt=True, tokenize=True,
                                            return_dict=False) for p in prompts]
    config = GenerationConfig(max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False,
                              eos_token_id=-1, pad_token_id=tokenizer.pad_token_id or 0)
    with torch.inference_mode():
        model.generate_batch(inputs[:2], generation_config=config)  # warm-up
        start = time.perf_counter()
        results = model.generate_batch(inputs, generation_config=config)
    elapsed = time.perf_counter() - start
    return sum(len(r.generated_tokens) for r in results.values()) / elapsed


def embedded(path, prompts, tokens, threads) -> float:
    engine = TransformersEngine(path, dtype="float32", threads=threads, max_batch_size=len(prompts),
                                max_model_len=1024)
    engine.wait_ready(600)

    async def run():
        await engine.complete(prompts[0], SamplingParams(max_tokens=4))  # warm-up
        start = time.perf_counter()
        done = await engine.complete_batch(prompts, SamplingParams(max_tokens=tokens))
        return sum(c.completion_tokens for c in done) / (time.perf_counter() - start)

    rate = asyncio.run(run())
    asyncio.run(engine.aclose())
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    path = ensure_base_checkpoint()
    tokenizer = AutoTokenizer.from_pretrained(path)
    prompts = chats(args.prompts)
    rates = {"one padded generate (baseline)": padded_generate(path, tokenizer, prompts, args.tokens),
             "transformers generate_batch (paged|sdpa)": transformers_continuous(
                 path, tokenizer, prompts, args.tokens),
             "askwise embedded engine": embedded(path, prompts, args.tokens, args.threads)}
    baseline = next(iter(rates.values()))
    print(f"{args.prompts} prompts x {args.tokens} tokens, float32, greedy, {args.threads} threads\n")
    print("| generator | tok/s | vs one padded generate |\n| --- | --- | --- |")
    for name, rate in rates.items():
        print(f"| {name} | {rate:.1f} | {rate / baseline:.2f}x |")


if __name__ == "__main__":
    main()
