"""The fine-tune's training loop: transformers' `Trainer`, fed packed rows (finetune.py).

Each item of the dataset is one micro-batch: the groups of examples `_batches` put together,
which the collator lays out as packed rows (a shared prefix once, then every example's own
tail, under a 4D mask). `compute_loss` is the fine-tune's own: the reply tokens' cross-entropy
with the action tag weighted `action_loss_weight` times, plus the cost contrast on the tags'
logits. Everything else is the Trainer's: the optimizer and its schedule, gradient
accumulation, gradient checkpointing, mixed precision, checkpoints and resuming, and running
under `accelerate launch` (DDP, FSDP or DeepSpeed: `training/accelerate/`), where each
process takes every `num_processes`-th micro-batch, as the loop it replaced did.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from transformers import Trainer, TrainerCallback

from .finetune import Group, _collate, _tag_targets, cost_contrast_loss, packed_spans

CHECKPOINT_PREFIX = "checkpoint-"


class PackedSteps(torch.utils.data.Dataset):
    """The run's micro-batches in training order (every epoch already laid out)."""

    def __init__(self, batches: list[list[int]]):
        self.batches = batches

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, index: int) -> list[int]:
        return self.batches[index]


class PackedCollator:
    """One micro-batch (a list of group indices) as the model's packed inputs, the loss's
    labels and weights, and where the action tags' logits are."""

    def __init__(self, groups: list[Group], pad_id: int, selective: bool, tag_weight: float,
                 tag_ids: list[int], packed: bool):
        self.groups, self.pad_id, self.selective = groups, pad_id, selective
        self.tag_weight, self.tag_ids, self.packed = tag_weight, tag_ids, packed

    def __call__(self, features: list[list[int]]) -> dict:
        [batch] = features  # per_device_train_batch_size is 1: an item is a whole micro-batch
        input_ids, mask, positions, labels, weights, keep = _collate(
            self.groups, batch, self.pad_id, self.selective, self.tag_weight)
        inputs = {"input_ids": input_ids, "attention_mask": mask, "position_ids": positions,
                  "labels": labels, "loss_weights": weights, "logits_to_keep": keep,
                  "train_tokens": sum(len(self.groups[i]) for i in batch)}
        if self.packed:
            inputs["packed_spans"] = packed_spans(self.groups, batch)
        if self.tag_ids:
            rows, cols, targets, owners = _tag_targets(self.groups, batch, self.tag_ids)
            inputs["tags"] = {"rows": torch.tensor(rows, dtype=torch.long),
                              "cols": torch.tensor(cols, dtype=torch.long), "targets": targets,
                              "owners": owners}
        return inputs


class AskwiseTrainer(Trainer):
    """`Trainer` with the fine-tune's loss (module docstring)."""

    def __init__(self, *args, tag_ids: list[int], cost_contrast_weight: float, **kwargs):
        super().__init__(*args, **kwargs)
        # compute_loss returns a micro-batch's mean: the Trainer divides it over the
        # accumulation steps itself
        self.loss_is_scaled_for_ga = False
        self.tag_ids, self.cost_contrast_weight = tag_ids, cost_contrast_weight
        self.train_tokens = self.target_tokens = 0

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        labels, weights, keep = inputs["labels"], inputs["loss_weights"], inputs["logits_to_keep"]
        spans = {"packed_spans": inputs["packed_spans"]} if "packed_spans" in inputs else {}
        outputs = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"],
                        position_ids=inputs["position_ids"], logits_to_keep=keep, **spans)
        logits = outputs.logits
        per_token = torch.nn.functional.cross_entropy(
            logits.float().reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100,
            reduction="none")
        loss = (per_token * weights.reshape(-1)).sum() / weights.sum()
        tags = inputs.get("tags")
        if tags is not None and len(tags["targets"]):
            cols = tags["cols"]
            if torch.is_tensor(keep):  # selective logits: columns of `keep`
                cols = torch.searchsorted(keep, cols)
            tag_logits = logits[tags["rows"], cols][:, self.tag_ids]
            loss = loss + self.cost_contrast_weight * cost_contrast_loss(
                tag_logits.float(), tags["targets"], tags["owners"])
        self.train_tokens += inputs["train_tokens"]
        self.target_tokens += int((labels != -100).sum())
        return (loss, outputs) if return_outputs else loss


class LossCurve(TrainerCallback):
    """The loss at every optimizer step (averaged over the processes), as the Trainer logs it."""

    def __init__(self):
        self.losses: list[float] = []

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            self.losses.append(float(logs["loss"]))


def last_checkpoint(state_dir: Path) -> Path | None:
    """The complete checkpoint with the most steps. The Trainer writes `trainer_state.json`
    last, so a checkpoint killed mid-save (SIGTERM, out of memory, a machine taken back) has
    none and is passed over: the run resumes from the one before."""
    if not state_dir.is_dir():
        return None
    complete = [d for d in state_dir.glob(CHECKPOINT_PREFIX + "*") if (d / "trainer_state.json").is_file()]
    return max(complete, key=lambda d: json.loads((d / "trainer_state.json").read_text())["global_step"],
               default=None)
