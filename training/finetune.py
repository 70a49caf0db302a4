"""Supervised fine-tuning on kept episodes: loss on the assistant's reply only.

Each example is (prompt messages, reply). The reply's action tag (`#CLARIFY`, ...) is the
decision the policy is trained to make; its tokens weigh `action_loss_weight` times the rest,
because among some twenty reply tokens the one that chooses the action otherwise gets a
twentieth of the gradient (at weight 1 the shipped policy learned only the actions' overall
frequencies, the same for every prompt). The prompt is rendered by the model's chat template
exactly as the engines render it at serving time (`add_generation_prompt=True`); the reply is
what the template appends after it, end-of-turn token included. Only reply tokens carry loss.

Speed on CPU, where every token of every sequence costs: the improve step keeps one turn of
one episode for many cost pairs, and the prompts of those examples differ only in their last
message (prompt.py puts the costs there). They are packed into one sequence: the shared
prefix once, then each example's own tail, with a 4D attention mask that lets each tail see
the prefix and itself only, and positions that continue from the prefix, so every example
gets exactly the logits it would get alone. On CPU the attention over such a row runs as its
prefix and its tails (packed_attention.py) rather than over the whole mask, skipping the scores
the mask would discard. The model computes logits only at positions that predict reply tokens
(`logits_to_keep` as indices): the 49k-word output layer then runs on a few dozen positions
instead of hundreds. bf16 autocast where the hardware has it (GPUs; CPUs with AVX-512 BF16 or
AMX).

Cost contrast (`cost_contrast_weight`): those packed examples are one prompt under several
cost pairs, often with different best actions. Plain SFT let a 135M model fit each prompt's
share of each action and ignore the costs; an extra cross-entropy on the action tag's
logits, centred over a group's examples, can only be lowered by reading the costs
(`cost_contrast_loss`).

The loop is transformers' `Trainer` (trainer.py) with this module's packed rows and loss, so
gradient accumulation, gradient checkpointing, mixed precision and `accelerate launch` (DDP,
FSDP, DeepSpeed ZeRO: training/accelerate/) are the Trainer's. Every `save_every` steps it
saves a checkpoint; a rerun continues from the last complete one.
"""

from __future__ import annotations

import json
import math
import random
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from askwise.policy import PROMPT_FORMAT_VERSION
from askwise.policy.checkpoints import trained_grid, write_meta

from . import packed_attention
from .config import TrainConfig
from .data import DOCUMENTS_VERSION

Example = tuple[list[dict[str, str]], str]
DONE_MARKER = ".askwise-done"


@dataclass
class FinetuneStats:
    examples: int
    dropped: int
    steps: int
    train_tokens: int  # every token in every sequence: what the forward and backward passes cost
    target_tokens: int  # tokens that carried loss
    seconds: float  # this process's steps only: a resumed run does not time the steps before
    final_loss: float
    resumed_from_step: int = 0  # steps done before this process started; 0 for a fresh run
    losses: list[float] = field(default_factory=list)  # per optimizer step, this process's run

    @property
    def tokens_per_s(self) -> float:
        return self.train_tokens / self.seconds if self.seconds else 0.0


@dataclass
class Group:
    """Examples whose prompts share every token up to the cost message: one packed row.

    `suffixes` holds, per example, its own tokens after the prefix (the cost message, the
    generation prompt, the reply), with the number of reply and action-tag tokens.
    """

    prefix: list[int]
    suffixes: list[tuple[list[int], int, int]]

    def __len__(self) -> int:
        return len(self.prefix) + sum(len(ids) for ids, _, _ in self.suffixes)


def _split_point(tokenizer, messages: list[dict[str, str]], prompt: str) -> int:
    """Characters of `prompt` before its last message: the part that does not depend on the
    costs (prompt.py puts them last). 0 when the template does not render messages in order."""
    head = tokenizer.apply_chat_template(messages[:-1], tokenize=False) if len(messages) > 1 else ""
    return len(head) if head and prompt.startswith(head) else 0


def encode_examples(tokenizer, examples: list[Example], max_seq_len: int,
                    share_prefixes: bool = True) -> tuple[list[Group], int]:
    """Token groups for training; examples longer than `max_seq_len` are dropped.

    With `share_prefixes`, examples whose prompts are the same up to the cost message (one
    turn of one episode, kept for several cost pairs) share a group, so the forward and
    backward passes run that prefix once. A group is cut in two where it would exceed
    `max_seq_len`. Without it, every example is its own group.
    """
    groups: dict[tuple, Group] = {}
    dropped = 0
    for messages, reply in examples:
        prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        full = tokenizer.apply_chat_template(
            messages + [{"role": "assistant", "content": reply}], tokenize=False)
        if not full.startswith(prompt):
            raise ValueError("the chat template does not extend the prompt with the reply; "
                             "this trainer needs one that does")
        cut = _split_point(tokenizer, messages, prompt) if share_prefixes else 0
        # Chat templates start each message with a special token, so tokenising the pieces
        # apart gives the tokens of the whole.
        prefix = tokenizer(full[:cut], add_special_tokens=False)["input_ids"] if cut else []
        rest = tokenizer(prompt[cut:], add_special_tokens=False)["input_ids"]
        reply_ids = tokenizer(full[len(prompt):], add_special_tokens=False)["input_ids"]
        if len(prefix) + len(rest) + len(reply_ids) > max_seq_len:
            dropped += 1
            continue
        tag = reply.split(None, 1)[0] if reply.startswith("#") else ""
        n_tag = len(tokenizer(tag, add_special_tokens=False)["input_ids"]) if tag else 0
        suffix = (rest + reply_ids, len(reply_ids), min(n_tag, len(reply_ids)))
        key = (tuple(prefix), 0 if share_prefixes else len(groups))
        while key in groups and len(groups[key]) + len(suffix[0]) > max_seq_len:
            key = (key[0], key[1] + 1)
        groups.setdefault(key, Group(prefix, [])).suffixes.append(suffix)
    return list(groups.values()), dropped


def _batches(groups: list[Group], batch_size: int, seed: int) -> list[list[int]]:
    """Groups per optimizer step: each step holds at least `batch_size` examples (or what is
    left). Similar lengths share a step (less padding); the steps themselves are shuffled."""
    order = sorted(range(len(groups)), key=lambda i: len(groups[i]))
    batches, current, count = [], [], 0
    for i in order:
        current.append(i)
        count += len(groups[i].suffixes)
        if count >= batch_size:
            batches.append(current)
            current, count = [], 0
    if current:
        batches.append(current)
    random.Random(seed).shuffle(batches)
    return batches


def _collate(groups: list[Group], indices: list[int], pad_id: int, selective: bool = True,
             tag_weight: float = 1.0):
    """Packed rows: a group's prefix, then each of its suffixes, every suffix attending to
    the prefix and to itself only (a 4D mask), its positions counting on from the prefix, so
    that each example sees exactly the tokens it would see alone.

    Returns ids, mask, positions, labels, loss weights and `keep`: with `selective`, a 1D
    tensor of the positions whose logits predict a reply token (the 49k-word output layer
    then runs there only); otherwise 0 (logits everywhere, the usual causal-LM loss).
    """
    import torch

    rows = [groups[i] for i in indices]
    width = max(len(g) for g in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    positions = torch.zeros((len(rows), width), dtype=torch.long)
    # Padding attends to itself only, so that no row of the mask is empty (NaN in softmax).
    mask = torch.eye(width, dtype=torch.bool).repeat(len(rows), 1, 1)
    labels = torch.full((len(rows), width), -100, dtype=torch.long)
    weights = torch.zeros((len(rows), width))
    for r, group in enumerate(rows):
        n_prefix = len(group.prefix)
        input_ids[r, :n_prefix] = torch.tensor(group.prefix, dtype=torch.long)
        positions[r, :n_prefix] = torch.arange(n_prefix)
        mask[r, :n_prefix, :n_prefix] = torch.ones(n_prefix, n_prefix, dtype=torch.bool).tril()
        start = n_prefix
        for ids, n_reply, n_tag in group.suffixes:
            end = start + len(ids)
            input_ids[r, start:end] = torch.tensor(ids, dtype=torch.long)
            positions[r, start:end] = torch.arange(n_prefix, n_prefix + len(ids))
            mask[r, start:end, :n_prefix] = True
            mask[r, start:end, start:end] = torch.ones(len(ids), len(ids), dtype=torch.bool).tril()
            # the logit at position t predicts token t+1
            first = end - n_reply - 1
            labels[r, first:end - 1] = torch.tensor(ids[-n_reply:], dtype=torch.long)
            weights[r, first:end - 1] = 1.0
            weights[r, first:first + n_tag] = tag_weight
            start = end
    if selective:
        keep = (labels != -100).any(dim=0).nonzero().flatten()
        labels, weights = labels[:, keep], weights[:, keep]
    else:
        keep = 0
    return input_ids, mask.unsqueeze(1), positions, labels, weights, keep


def packed_spans(groups: list[Group], indices: list[int]) -> list[tuple[int, list[int]]]:
    """The rows' layout for packed_attention.py: per row, its prefix's length and its tails'."""
    return [(len(groups[i].prefix), [len(ids) for ids, _, _ in groups[i].suffixes]) for i in indices]


def _tag_targets(groups: list[Group], indices: list[int], tag_ids: list[int]):
    """The examples of a step whose reply opens with an action tag: per example its row, the
    column whose logit predicts the tag's own token (the one after "#"), which tag, and which
    group it belongs to. Columns are in the packed row's coordinates (as `_collate` lays it out)."""
    rows, cols, targets, owners = [], [], [], []
    for row, index in enumerate(indices):
        group = groups[index]
        end = len(group.prefix)
        for ids, n_reply, _ in group.suffixes:
            end += len(ids)
            if n_reply >= 2 and ids[-n_reply + 1] in tag_ids:
                rows.append(row)
                cols.append(end - n_reply)
                targets.append(tag_ids.index(ids[-n_reply + 1]))
                owners.append(index)
    return rows, cols, targets, owners


def cost_contrast_loss(logits, targets: list[int], owners: list[int]):
    """Cross-entropy of the action logits after subtracting, per group, their mean over the
    group's examples; only groups whose examples want different actions count.

    Why: the examples of a group are one prompt under several cost pairs. Plain SFT lets the
    model fit the share of each action in the group while ignoring the costs (docs/training.md,
    "Cost contrast"). Centring removes what the examples have in common, so the
    only way to lower this loss is to make the action depend on what differs: the costs.
    """
    import torch

    owners_t = torch.as_tensor(owners, device=logits.device)
    targets_t = torch.as_tensor(targets, device=logits.device)
    losses = []
    for owner in sorted(set(owners)):
        chosen = owners_t == owner
        if targets_t[chosen].unique().numel() < 2:
            continue
        z = logits[chosen]
        losses.append(torch.nn.functional.cross_entropy(z - z.mean(0, keepdim=True), targets_t[chosen]))
    return torch.stack(losses).mean() if losses else logits.sum() * 0.0


def action_tag_ids(tokenizer) -> list[int]:
    """The token after "#" of each action tag, in `Action` order: the token that decides."""
    from askwise.policy import Action

    ids = [tokenizer(action.tag, add_special_tokens=False)["input_ids"] for action in Action]
    second = [t[1] if len(t) > 1 else None for t in ids]
    if None in second or len(set(second)) != len(second):
        raise ValueError("this tokenizer does not give each action tag a token of its own after "
                         "'#'; the cost-contrast loss needs one (set cost_contrast_weight to 0)")
    return second


def _mixed_precision() -> str:
    import torch

    from askwise.policy.hardware import cpu_has_native_bf16

    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "bf16" if cpu_has_native_bf16() else "no"


def machine() -> dict:
    """What a run's tokens/s depend on, for its report: the CPU's vector extensions decide
    whether the fine-tune autocasts to bf16, and the same recipe runs several times slower
    in fp32 on an AVX2-only CPU (docs/benchmarks.md)."""
    import os
    import platform

    import torch

    from askwise.policy.hardware import cpu_info, cpu_simd

    info = {"cpu": cpu_info().get("model name", platform.machine()), "cpus": os.cpu_count(),
            "mixed_precision": _mixed_precision(), "torch": torch.__version__}
    if simd := cpu_simd():
        info["cpu_simd"] = simd
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def finetune(examples: list[Example], base: Path, out: Path, config: TrainConfig,
             learning_rate: float, init_adapter: Path | None = None, desc: str = "fine-tune"
             ) -> FinetuneStats:
    """Train on `examples`; write the adapter (or full model) to `out`. Resumes from the last
    complete checkpoint in `out/state` (trainer.py)."""
    import torch
    from accelerate import PartialState
    from transformers import AutoTokenizer, TrainingArguments, set_seed

    from askwise.policy.hardware import limit_heap_growth

    from .trainer import AskwiseTrainer, LossCurve, PackedCollator, PackedSteps, last_checkpoint

    if (out / DONE_MARKER).exists():
        return FinetuneStats(**json.loads((out / DONE_MARKER).read_text()))
    torch.set_num_threads(config.torch_threads)
    limit_heap_growth()
    tokenizer = AutoTokenizer.from_pretrained(base)
    encoded, dropped = encode_examples(tokenizer, examples, config.max_seq_len, config.share_prefixes)
    if not encoded:
        raise ValueError("no training examples fit in max_seq_len")
    precision = _mixed_precision()
    batches, total_steps = _schedule(encoded, config, PartialState().num_processes)
    # Made before the model: under DeepSpeed ZeRO-3 the arguments shard the weights as they load.
    args = TrainingArguments(
        output_dir=str(out / "state"), per_device_train_batch_size=1,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        gradient_checkpointing=config.gradient_checkpointing, learning_rate=learning_rate,
        optim="adamw_torch", weight_decay=0.0, max_grad_norm=0.0, lr_scheduler_type="linear",
        max_steps=total_steps,
        warmup_steps=int(config.warmup_ratio * total_steps),
        bf16=precision == "bf16", fp16=precision == "fp16", use_cpu=not torch.cuda.is_available(),
        seed=config.seed, data_seed=config.seed,
        train_sampling_strategy="sequential", remove_unused_columns=False,
        average_tokens_across_devices=False, ddp_find_unused_parameters=False,
        save_strategy="steps", save_steps=config.save_every, save_total_limit=1,
        logging_steps=1, report_to="none", dataloader_num_workers=0, disable_tqdm=False)
    packed = args.device.type == "cpu" if config.packed_attention is None else config.packed_attention
    set_seed(config.seed)  # a fresh adapter's initial weights
    model = _load_model(base, config, init_adapter, packed)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    tag_ids = action_tag_ids(tokenizer) if config.cost_contrast_weight else []
    curve = LossCurve()
    trainer = AskwiseTrainer(
        model=model, args=args, train_dataset=PackedSteps(batches),
        data_collator=PackedCollator(encoded, pad_id, config.selective_logits, config.action_loss_weight,
                                     tag_ids, packed),
        callbacks=[curve], tag_ids=tag_ids, cost_contrast_weight=config.cost_contrast_weight)
    resume = last_checkpoint(out / "state")
    resumed_from_step = (json.loads((resume / "trainer_state.json").read_text())["global_step"]
                         if resume else 0)
    print(f"{desc}: {sum(len(g.suffixes) for g in encoded)} examples, {total_steps} steps"
          + (f", resuming at step {resumed_from_step}" if resume else ""), flush=True)
    started = time.monotonic()
    trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    stats = FinetuneStats(examples=sum(len(g.suffixes) for g in encoded), dropped=dropped, steps=total_steps,
                          train_tokens=trainer.train_tokens, target_tokens=trainer.target_tokens,
                          seconds=time.monotonic() - started,
                          final_loss=curve.losses[-1] if curve.losses else float("nan"),
                          resumed_from_step=resumed_from_step, losses=curve.losses)
    _save_final(trainer, tokenizer, out, base, config, init_adapter, stats)
    return stats


def _load_model(base: Path, config: TrainConfig, init_adapter: Path | None, packed: bool):
    """The base model, wrapped in a trainable LoRA adapter (a fresh one, or `init_adapter`
    continued) unless the run fine-tunes every weight. Weights in fp32 (autocast does the rest),
    but a LoRA run on a GPU with bf16 keeps the frozen base in bf16: half the memory, and the
    adapter's own weights stay fp32 (peft)."""
    import torch
    from transformers import AutoModelForCausalLM

    attention = {"attn_implementation": packed_attention.register()} if packed else {}
    frozen_bf16 = config.lora and torch.cuda.is_available() and _mixed_precision() == "bf16"
    model = AutoModelForCausalLM.from_pretrained(
        base, dtype=torch.bfloat16 if frozen_bf16 else torch.float32, **attention)
    if not config.lora:
        return model
    from peft import LoraConfig, PeftConfig, PeftModel, get_peft_model

    if config.gradient_checkpointing:
        model.enable_input_require_grads()  # checkpointed LoRA layers need a graph to the inputs
    if init_adapter is None:
        return get_peft_model(model, LoraConfig(
            r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
            target_modules=config.lora_targets, task_type="CAUSAL_LM"))
    # The adapter's saved config holds the dropout of the run that made it; this run's is the
    # one in `config`.
    adapter_config = PeftConfig.from_pretrained(str(init_adapter))
    adapter_config.lora_dropout = config.lora_dropout
    return PeftModel.from_pretrained(model, str(init_adapter), config=adapter_config, is_trainable=True)


def _schedule(encoded: list[Group], config: TrainConfig, processes: int) -> tuple[list[list[int]], int]:
    """Every micro-batch in training order, and the number of optimizer steps. A step takes
    `gradient_accumulation_steps` micro-batches on each process; epochs repeat the shuffled
    order, and the last step of a partial epoch takes the next epoch's first micro-batches."""
    batches = _batches(encoded, config.batch_size, config.seed)
    per_step = processes * config.gradient_accumulation_steps
    total_steps = max(1, math.ceil(math.ceil(len(batches) / per_step) * config.epochs))
    return [batches[i % len(batches)] for i in range(total_steps * per_step)], total_steps


def _save_final(trainer, tokenizer, out: Path, base: Path, config: TrainConfig,
                init_adapter: Path | None, stats: FinetuneStats) -> None:
    """Write the adapter (or model) with its askwise.json, drop the resumable state, and mark
    the folder done so a rerun skips it. `save_model` gathers sharded weights (FSDP, ZeRO-3)
    and writes once, from the main process."""
    trainer.save_model(str(out))
    if trainer.is_world_process_zero():
        (out / "training_args.bin").unlink(missing_ok=True)  # the run's pickled arguments: not the adapter's
        if not config.lora:
            tokenizer.save_pretrained(out)
        write_meta(out, kind="lora" if config.lora else "full", prompt_format=PROMPT_FORMAT_VERSION,
                   base=str(base), setting=config.setting,
                   game={"user": config.simulator, "documents": DOCUMENTS_VERSION},
                   **trained_grid(init_adapter, config.train_alphas, config.train_betas))
        shutil.rmtree(out / "state", ignore_errors=True)
        (out / DONE_MARKER).write_text(json.dumps(stats.__dict__))
    trainer.accelerator.wait_for_everyone()
