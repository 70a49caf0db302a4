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

The loop is plain torch under `accelerate.Accelerator`, so `accelerate launch` runs it
data-parallel on several GPUs unchanged. Every `save_every` steps it saves a resumable state
(`accelerator.save_state`, into a directory of its own); a rerun continues from the last
complete one.
"""

from __future__ import annotations

import json
import math
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

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


def _save_checkpoint(accelerator, state_dir: Path, step: int) -> None:
    """Write the resumable state into a directory of its own and drop the older ones only once
    it is whole. A run killed mid-save (SIGTERM, out of memory, a machine taken back) then
    resumes from the previous checkpoint; saving over it in place left new weights beside the
    old step.json, or a truncated file that load_state cannot read. step.json is written
    last, so a directory that has one is complete."""
    partial, done = state_dir / f"{step:07d}.partial", state_dir / f"{step:07d}"
    if accelerator.is_main_process:
        shutil.rmtree(partial, ignore_errors=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(partial))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        (partial / "step.json").write_text(json.dumps({"step": step}))
        partial.rename(done)
        for older in state_dir.iterdir():  # earlier checkpoints, and loose files from a flat layout
            if older.is_dir() and older != done:
                shutil.rmtree(older)
            elif older.is_file():
                older.unlink()
    accelerator.wait_for_everyone()


def _last_checkpoint(state_dir: Path) -> Path | None:
    """The complete checkpoint with the most steps. `state_dir` itself counts too, so a run
    whose one checkpoint sits straight in it (the flat layout) resumes from it."""
    if not state_dir.is_dir():
        return None
    complete = [d for d in (state_dir, *state_dir.iterdir()) if (d / "step.json").is_file()]
    return max(complete, key=lambda d: json.loads((d / "step.json").read_text())["step"], default=None)


def finetune(examples: list[Example], base: Path, out: Path, config: TrainConfig,
             learning_rate: float, init_adapter: Path | None = None, desc: str = "fine-tune"
             ) -> FinetuneStats:
    """Train on `examples`; write the adapter (or full model) to `out`. Resumes from `out/state`."""
    import torch
    from accelerate import Accelerator
    from transformers import AutoTokenizer

    from askwise.policy.hardware import limit_heap_growth

    if (out / DONE_MARKER).exists():
        return FinetuneStats(**json.loads((out / DONE_MARKER).read_text()))
    torch.set_num_threads(config.torch_threads)
    limit_heap_growth()
    accelerator = Accelerator(mixed_precision=_mixed_precision())
    torch.manual_seed(config.seed)
    tokenizer = AutoTokenizer.from_pretrained(base)
    encoded, dropped = encode_examples(tokenizer, examples, config.max_seq_len, config.share_prefixes)
    if not encoded:
        raise ValueError("no training examples fit in max_seq_len")
    packed = (accelerator.device.type == "cpu" if config.packed_attention is None
              else config.packed_attention)
    model = _load_model(base, config, init_adapter, packed)
    mine, total_steps = _schedule(encoded, config, accelerator)
    optimizer, scheduler = _optimizer(model, learning_rate, total_steps, config)
    # The scheduler stays outside `prepare`: accelerate would step it once per process per
    # step, and `total_steps` already counts steps per process.
    model, optimizer = accelerator.prepare(model, optimizer)
    accelerator.register_for_checkpointing(scheduler)
    state_dir = out / "state"
    step = resumed_from_step = _resume(accelerator, state_dir)

    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    tag_ids = action_tag_ids(tokenizer) if config.cost_contrast_weight else []
    model.train()
    started, train_tokens, target_tokens, loss_value = time.monotonic(), 0, 0, float("nan")
    with tqdm(total=total_steps, initial=step, desc=desc, unit="step",
              disable=not accelerator.is_local_main_process) as bar:
        while step < total_steps:
            loss, targets = _batch_loss(model, accelerator, encoded, mine[step], pad_id, tag_ids,
                                        packed, config)
            accelerator.backward(loss)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
            train_tokens += sum(len(encoded[i]) for i in mine[step])
            target_tokens += targets
            step += 1
            loss_value = float(loss.detach())
            bar.update()
            bar.set_postfix(loss=f"{loss_value:.3f}")
            if step % config.save_every == 0 and step < total_steps:
                _save_checkpoint(accelerator, state_dir, step)

    stats = FinetuneStats(examples=sum(len(g.suffixes) for g in encoded), dropped=dropped, steps=total_steps,
                          train_tokens=train_tokens, target_tokens=target_tokens,
                          seconds=time.monotonic() - started, final_loss=loss_value,
                          resumed_from_step=resumed_from_step)
    _save_final(accelerator, model, tokenizer, out, base, config, init_adapter, stats)
    return stats


def _load_model(base: Path, config: TrainConfig, init_adapter: Path | None, packed: bool):
    """The base model in fp32 (autocast does the rest), wrapped in a trainable LoRA adapter
    (a fresh one, or `init_adapter` continued) unless the run fine-tunes every weight."""
    import torch
    from transformers import AutoModelForCausalLM

    attention = {"attn_implementation": packed_attention.register()} if packed else {}
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32, **attention)
    if not config.lora:
        return model
    from peft import LoraConfig, PeftConfig, PeftModel, get_peft_model

    if init_adapter is None:
        return get_peft_model(model, LoraConfig(
            r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
            target_modules=config.lora_targets, task_type="CAUSAL_LM"))
    # The adapter's saved config holds the dropout of the run that made it; this run's is the
    # one in `config`.
    adapter_config = PeftConfig.from_pretrained(str(init_adapter))
    adapter_config.lora_dropout = config.lora_dropout
    return PeftModel.from_pretrained(model, str(init_adapter), config=adapter_config, is_trainable=True)


def _schedule(encoded: list[Group], config: TrainConfig, accelerator) -> tuple[list[list[int]], int]:
    """This process's batches, one per optimizer step, and the number of steps: each process
    takes every num_processes-th batch, and epochs repeat the shuffled order."""
    batches = _batches(encoded, config.batch_size, config.seed)
    processes = accelerator.num_processes
    total_steps = max(1, math.ceil(math.ceil(len(batches) / processes) * config.epochs))
    schedule = [batches[i % len(batches)] for i in range(total_steps * processes)]
    return schedule[accelerator.process_index::processes], total_steps


def _optimizer(model, learning_rate: float, total_steps: int, config: TrainConfig):
    """AdamW over the trainable weights, with linear warm-up and linear decay."""
    import torch
    from transformers import get_linear_schedule_with_warmup

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=learning_rate, weight_decay=0.0)
    scheduler = get_linear_schedule_with_warmup(
        optimizer, int(config.warmup_ratio * total_steps), total_steps)
    return optimizer, scheduler


def _resume(accelerator, state_dir: Path) -> int:
    """Load the last complete checkpoint, if any; the step it reached (0 for a fresh run)."""
    if (last := _last_checkpoint(state_dir)) is None:
        return 0
    accelerator.load_state(str(last))
    return json.loads((last / "step.json").read_text())["step"]


def _batch_loss(model, accelerator, encoded: list[Group], batch: list[int], pad_id: int,
                tag_ids: list[int], packed: bool, config: TrainConfig):
    """The weighted cross-entropy of one batch's replies, plus the cost-contrast loss on its
    action tags; and how many target tokens it had."""
    import torch

    input_ids, mask, positions, labels, weights, keep = (
        t.to(accelerator.device) if hasattr(t, "to") else t
        for t in _collate(encoded, batch, pad_id, config.selective_logits, config.action_loss_weight))
    spans = {"packed_spans": packed_spans(encoded, batch)} if packed else {}
    with accelerator.autocast():
        logits = model(input_ids=input_ids, attention_mask=mask, position_ids=positions,
                       logits_to_keep=keep, **spans).logits
    per_token = torch.nn.functional.cross_entropy(
        logits.float().reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100,
        reduction="none")
    loss = (per_token * weights.reshape(-1)).sum() / weights.sum()
    if tag_ids:
        rows, cols, targets, owners = _tag_targets(encoded, batch, tag_ids)
        if rows:
            cols_t = torch.as_tensor(cols, device=logits.device)
            if torch.is_tensor(keep):  # selective logits: columns of `keep`
                cols_t = torch.searchsorted(keep, cols_t)
            tag_logits = logits[torch.as_tensor(rows, device=logits.device), cols_t][:, tag_ids]
            loss = loss + config.cost_contrast_weight * cost_contrast_loss(
                tag_logits.float(), targets, owners)
    return loss, int((labels != -100).sum())


def _save_final(accelerator, model, tokenizer, out: Path, base: Path, config: TrainConfig,
                init_adapter: Path | None, stats: FinetuneStats) -> None:
    """Write the adapter (or model) with its askwise.json, drop the resumable state, and mark
    the folder done so a rerun skips it."""
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        accelerator.unwrap_model(model).save_pretrained(out)
        if not config.lora:
            tokenizer.save_pretrained(out)
        write_meta(out, kind="lora" if config.lora else "full", prompt_format=PROMPT_FORMAT_VERSION,
                   base=str(base), setting=config.setting,
                   game={"user": config.simulator, "documents": DOCUMENTS_VERSION},
                   **trained_grid(init_adapter, config.train_alphas, config.train_betas))
        shutil.rmtree(out / "state", ignore_errors=True)
        (out / DONE_MARKER).write_text(json.dumps(stats.__dict__))
    accelerator.wait_for_everyone()
