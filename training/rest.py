"""ReST with collaborative self-play: grow, improve, fine-tune, repeat.

    bootstrap (optional)  format demonstrations from annotations (bootstrap.py)
    for each iteration:
      grow       the current policy plays every training item against the user simulator:
                 `samples_per_action` episodes with each first action forced (so every action
                 is tried on every item) plus `free_samples` where it chooses; intents are
                 drawn by the environment, costs in the prompt from the training grid
      improve    every episode is scored for every training cost pair; per (item, costs) the
                 best action's best episode is kept (improve.py)
      fine-tune  SFT on the kept episodes, prompted with the costs they were kept for,
                 continuing the current adapter (finetune.py)
    value (optional)      the final policy plays held-out train items with every first action
                          forced; the expected-value head is fitted on what they realised
                          (value.py)

A run lives in one folder. Each stage writes its result there and is skipped when rerun, and
grow and fine-tune resume mid-way, so `askwise train` with the same `--output-dir` continues
an interrupted run.

Stages on several GPUs: a grow wants every GPU for vLLM in one process, a fine-tune one process
per GPU. `--grow-only` runs up to and including the next grow (or, once every iteration is
fine-tuned, the value stage) and stops; `--finetune-only` (under `accelerate launch`) runs the
fine-tunes whose grows are played and stops at the next grow. Alternating the two runs the
same stages as one plain `askwise train`; docs/training.md has the recipe. A plain run under
`accelerate launch` grows on the main process while the others wait (up to `GROW_WAIT`).

The final adapter is `<output_dir>/adapter`, loadable by the server (`askwise serve
--adapter`) and by vLLM (merged: `askwise vllm-cpu --adapter`).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from datetime import timedelta
from pathlib import Path

from askwise.policy import Action
from askwise.policy.checkpoints import ensure_base_checkpoint
from askwise.policy.engines.base import SamplingParams

from .bootstrap import demonstrations
from .config import TrainConfig
from .data import Item, item_rng, load_ambigqa
from .episodes import Episode, EpisodeSpec, load_episodes, play_episodes, spec_seed, with_questions
from .finetune import DONE_MARKER, finetune, machine
from .improve import best_action_table, improve, select_for_training, training_examples
from .rollout import rollout_engine, user_simulator


def grow_specs(items: list[Item], config: TrainConfig, iteration: int) -> list[EpisodeSpec]:
    grid = config.train_grid()
    specs = []
    for item in items:
        rng = item_rng(config.seed, "grow", iteration, item.id)
        firsts = [a for a in Action for _ in range(config.samples_per_action)]
        firsts += [None] * config.free_samples
        offset = rng.randrange(len(item.interpretations))
        for sample, forced in enumerate(firsts):
            # Intents cycle through the readings so each action's group sees several of them.
            intent = (offset + sample) % len(item.interpretations)
            specs.append(EpisodeSpec(item=item, sample=sample, intent=intent, costs=rng.choice(grid),
                                     forced=forced, seed=spec_seed(config.seed, iteration, item.id, sample)))
    return specs


async def play(config: TrainConfig, base: Path, adapter: Path | None, specs: list[EpisodeSpec],
               params: SamplingParams, out: Path, desc: str, log_dir: Path) -> list[Episode]:
    gpu = config.vllm_gpu(seed=config.seed)
    async with rollout_engine(config.rollout_backend, base, adapter, threads=config.torch_threads,
                              vllm_venv=config.vllm_venv, log_path=log_dir / "rollout-server.log",
                              **gpu) as engine, \
            user_simulator(config.simulator, config.rollout_backend, base, config.user_model,
                           threads=config.torch_threads, vllm_venv=config.vllm_venv,
                           log_path=log_dir / "user-server.log", **gpu) as simulator:
        return await play_episodes(engine, simulator, specs, params, config.max_questions,
                                   concurrency=config.rollout_concurrency, out=out, desc=desc,
                                   redraws=config.question_redraws, lists=config.lists)


def _publish(adapter: Path, final: Path) -> None:
    tmp = final.with_name(final.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(adapter, tmp, ignore=shutil.ignore_patterns(DONE_MARKER, "state"))
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)


# How long processes that fine-tune wait at a barrier for the main process's grow (the
# process group's timeout; the default, 10 to 30 minutes, is shorter than a real grow).
GROW_WAIT = timedelta(hours=24)


def train(config: TrainConfig) -> Path:
    """Runs (or resumes) what `config` asks; returns the final adapter or model folder, or,
    where a stage-only run stops early, the folder whose stage is next."""
    import torch
    from accelerate import PartialState

    # cpu=True where there is no GPU: processes a launcher started (torchrun, `accelerate launch
    # --multi_gpu`) then join one gloo group instead of each training alone.
    state = PartialState(cpu=not torch.cuda.is_available(), timeout=GROW_WAIT)
    out = config.output_dir
    out.mkdir(parents=True, exist_ok=True)
    if state.is_main_process:
        config.save(out / "config.json")
    base = config.base_model or ensure_base_checkpoint()
    value_start, value_end = config.value_range()
    pool = load_ambigqa("train", limit=max(config.train_items + config.bootstrap_items, value_end),
                        grounded=config.setting == "grounded", seed=config.seed)
    items = pool[:config.train_items]
    boot_items = pool[config.train_items:config.train_items + config.bootstrap_items]
    report: dict = {"config": json.loads(config.model_dump_json()), "machine": machine(),
                    "iterations": []}

    # `adapter` on `base` is what the next grow plays (or, without LoRA, `base` alone).
    adapter = config.init_adapter
    if config.bootstrap_items:
        report["bootstrap"] = _bootstrap(config, boot_items, base, adapter, out / "bootstrap")
        adapter, base = _advance(config, out / "bootstrap", base)
        _release_memory()

    for iteration in range(1, config.iterations + 1):
        folder = out / f"iter-{iteration}"
        folder.mkdir(exist_ok=True)
        if config.finetune_only and not _grown(config, items, folder, iteration):
            return _stop(state, folder, f"iteration {iteration}'s grow is next: play it in one process "
                         "(askwise train --grow-only, same flags), then run this again")
        examples, summary = _grow_and_improve(config, state, items, base, adapter, folder, iteration)
        if config.grow_only and not (folder / "adapter" / DONE_MARKER).exists():
            return _stop(state, folder, f"iteration {iteration} is grown; its fine-tune is next "
                         "(askwise train --finetune-only, under accelerate launch on several GPUs)")
        stats = finetune(examples, base, folder / "adapter", config, config.learning_rate,
                         init_adapter=adapter, desc=f"fine-tune {iteration}")
        summary["finetune"] = {**stats.__dict__, "tokens_per_s": stats.tokens_per_s}
        if state.is_main_process:
            (folder / "improve.json").write_text(json.dumps(summary, indent=2) + "\n")
        report["iterations"].append(summary)
        adapter, base = _advance(config, folder / "adapter", base)
        _release_memory()

    final = out / ("adapter" if config.lora else "model")
    if state.is_main_process:
        _publish(adapter if config.lora else base, final)
    state.wait_for_everyone()
    if config.value_items and config.finetune_only:
        return _stop(state, final, "the value stage is next: play it in one process (askwise train "
                     "--grow-only, same flags)")
    if config.value_items:
        report["value"] = _value_stage(config, state, pool[value_start:value_end], base, adapter,
                                       out / "value", final)
    if state.is_main_process:
        (out / "train_report.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    state.wait_for_everyone()
    return final


def _bootstrap(config: TrainConfig, boot_items: list[Item], base: Path, adapter: Path | None,
               out: Path) -> dict:
    """Fine-tune on format demonstrations built from `boot_items`' annotations; its report.

    From an init adapter too: that carries a policy trained on an older prompt format over to
    the current one (it knows the actions, but not where things now stand)."""
    examples = demonstrations(boot_items, config.train_grid(), config.max_questions, config.seed,
                              tuple(Action(a) for a in config.bootstrap_actions), config.list_labels,
                              config.open_questions)
    weight = config.bootstrap_action_loss_weight
    boot_config = config if weight is None else config.model_copy(update={"action_loss_weight": weight})
    stats = finetune(examples, base, out, boot_config, config.bootstrap_learning_rate,
                     init_adapter=adapter, desc="bootstrap")
    return {"items": len(boot_items), **stats.__dict__, "tokens_per_s": stats.tokens_per_s}


def _grown(config: TrainConfig, items: list[Item], folder: Path, iteration: int) -> bool:
    played = {e.key for e in load_episodes(folder / "episodes.jsonl")}
    return all(spec.key in played for spec in grow_specs(items, config, iteration))


def _stop(state, folder: Path, message: str) -> Path:
    """End a stage-only run where the next stage is another kind's."""
    if state.is_main_process:
        print(f"askwise train: {message}", flush=True)
    state.wait_for_everyone()
    return folder


def _grow_and_improve(config: TrainConfig, state, items: list[Item], base: Path,
                      adapter: Path | None, folder: Path, iteration: int) -> tuple[list, dict]:
    """Play (or finish playing) the iteration's episodes, keep the best per (item, cost pair),
    and write improve.json; the fine-tuning examples and the iteration's summary."""
    grid = config.train_grid()
    specs = grow_specs(items, config, iteration)
    params = SamplingParams(max_tokens=config.max_tokens, temperature=config.temperature)
    started = time.monotonic()
    # Under `accelerate launch` one process plays (the rollout server uses the GPU it is
    # given) while the others wait; all of them then fine-tune on the same episodes.
    played = {e.key for e in load_episodes(folder / "episodes.jsonl")}
    # A resumed run whose grow is complete starts no rollout server.
    if state.is_main_process and any(spec.key not in played for spec in specs):
        asyncio.run(play(config, base, adapter, specs, params, folder / "episodes.jsonl",
                         f"grow {iteration}", folder))
    state.wait_for_everyone()
    keys = {spec.key for spec in specs}
    episodes = [e for e in load_episodes(folder / "episodes.jsonl") if e.key in keys]
    grow_s = time.monotonic() - started
    fresh = len(keys - played)
    choices = improve(items, episodes, grid, config.min_reward, config.action_values)
    kept = select_for_training(choices, config.examples_per_item or len(grid), config.seed + iteration,
                               balanced=config.example_selection == "balanced")
    examples = training_examples(kept, {item.id: item for item in items}, config.max_questions)
    summary = {
        "iteration": iteration, "episodes": len(episodes), "grow_seconds": grow_s,
        # Only what this run played: a resumed run would otherwise report a rate of
        # thousands of episodes/s for a grow it only read back.
        "episodes_per_s": fresh / grow_s if fresh and grow_s > 0 else None,
        "cost_pairs_per_episode": len(grid), "kept_choices": len(choices),
        "trained_choices": len(kept), "sft_examples": len(examples),
        "mean_f1": sum(e.f1 for e in episodes) / max(1, len(episodes)),
        "best_action_by_costs": {f"alpha={a:g} beta={b:g}": v
                                 for (a, b), v in best_action_table(choices).items()},
    }
    # Written before the fine-tune too: what improve kept is worth reading during hours of CPU
    # fine-tuning, and it is all a --grow-only run leaves.
    if state.is_main_process:
        (folder / "improve.json").write_text(json.dumps(summary, indent=2) + "\n")
    return examples, summary


async def play_value(config: TrainConfig, base: Path, adapter: Path | None, specs: list[EpisodeSpec],
                     params: SamplingParams, folder: Path) -> None:
    """The value stage's episodes. With lists built from the readings, the questions play
    first and each item's list is built from its question (greedy: the same request)."""
    out = folder / "episodes.jsonl"
    if config.lists == "readings":
        lists = [s for s in specs if s.forced is Action.MULTI_ANSWER]
        first = [s for s in specs if s.forced is not Action.MULTI_ANSWER]
        done = {e.key: e for e in load_episodes(out)}
        asked = [done[s.key] for s in first if s.key in done]
        if len(asked) < len(first):
            asked = await play(config, base, adapter, first, params, out, "value play (questions first)",
                               folder)
        specs = with_questions(lists, asked)
    await play(config, base, adapter, specs, params, out, "value play", folder)


def _value_stage(config: TrainConfig, state, items: list[Item], base: Path, adapter: Path | None,
                 folder: Path, final: Path) -> dict:
    """Play the final policy's forced actions on `items`, fit the value head on what they
    realised and write it into `final` (training/value.py)."""
    from askwise.policy.checkpoints import merged_checkpoint
    from askwise.policy.questions import DEFAULT_REDRAWS

    from .value import cv_summary, fit_from_folder, value_specs

    folder.mkdir(exist_ok=True)
    specs = value_specs(items, config.train_grid(), config.seed)
    played = {e.key for e in load_episodes(folder / "episodes.jsonl")}
    if state.is_main_process and any(spec.key not in played for spec in specs):
        # Greedy with redraws: the replies the head describes are the ones a server sends.
        served = config.model_copy(update={"question_redraws": DEFAULT_REDRAWS})
        params = SamplingParams(max_tokens=config.max_tokens, temperature=0.0)
        asyncio.run(play_value(served, base, adapter, specs, params, folder))
    state.wait_for_everyone()
    report: dict = {}
    if state.is_main_process:
        model_dir = merged_checkpoint(base, adapter) if adapter is not None else base
        head, report = fit_from_folder(folder, items, model_dir, config.max_questions,
                                       config.torch_threads, config.seed, config.train_grid())
        start, end = config.value_range()
        head.save(final, items=f"AmbigQA train, usable items {start} to {end - 1}",
                  setting=config.setting, fit=report)
        print(f"value head: {cv_summary(report)}")
    state.wait_for_everyone()
    return report


def _release_memory() -> None:
    """Hand freed training memory back before vLLM starts next to this process: the GPU's
    cached blocks (vLLM sizes its cache from what is free), and on a CPU glibc's freed arenas
    (~14 GB after a CPU fine-tune otherwise)."""
    import gc

    import torch

    from askwise.policy.hardware import trim_heap

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    trim_heap()


def _advance(config: TrainConfig, trained: Path, base: Path) -> tuple[Path | None, Path]:
    """(adapter, base) for the next stage: LoRA continues on the same base; a full fine-tune
    becomes the next base."""
    return (trained, base) if config.lora else (None, trained)
