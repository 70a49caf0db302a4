"""The fine-tune's training loop before it moved onto transformers' Trainer: plain torch under
`accelerate.Accelerator`, one optimizer step per micro-batch. Kept as the baseline that
benchmarks/training_throughput.py times the Trainer against; it trains on the same packed rows
with the same loss (training/finetune.py) and saves nothing."""

from __future__ import annotations

import math
import time
from pathlib import Path

from askwise.training.config import TrainConfig
from askwise.training.finetune import (
    Example,
    _batches,
    _collate,
    _load_model,
    _mixed_precision,
    _tag_targets,
    action_tag_ids,
    cost_contrast_loss,
    encode_examples,
    packed_spans,
)


def loop_finetune(examples: list[Example], base: Path, config: TrainConfig, learning_rate: float
                  ) -> tuple[int, float, list[float]]:
    """Train as the old loop did; (examples, seconds, loss per step)."""
    import torch
    from accelerate import Accelerator
    from transformers import AutoTokenizer, get_linear_schedule_with_warmup

    torch.set_num_threads(config.torch_threads)
    accelerator = Accelerator(mixed_precision=_mixed_precision())
    tokenizer = AutoTokenizer.from_pretrained(base)
    encoded, _ = encode_examples(tokenizer, examples, config.max_seq_len, config.share_prefixes)
    packed = accelerator.device.type == "cpu" if config.packed_attention is None else config.packed_attention
    torch.manual_seed(config.seed)
    model = _load_model(base, config, None, packed)
    batches = _batches(encoded, config.batch_size, config.seed)
    total_steps = max(1, math.ceil(len(batches) * config.epochs))
    schedule = [batches[i % len(batches)] for i in range(total_steps)]
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=learning_rate,
                                  weight_decay=0.0)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(config.warmup_ratio * total_steps), total_steps)
    model, optimizer = accelerator.prepare(model, optimizer)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    tag_ids = action_tag_ids(tokenizer) if config.cost_contrast_weight else []
    model.train()
    losses, started = [], time.monotonic()
    for batch in schedule:
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
        rows, cols, targets, owners = _tag_targets(encoded, batch, tag_ids) if tag_ids else ([], [], [], [])
        if rows:
            cols_t = torch.as_tensor(cols)
            if torch.is_tensor(keep):
                cols_t = torch.searchsorted(keep, cols_t)
            tag_logits = logits[torch.as_tensor(rows), cols_t][:, tag_ids]
            loss = loss + config.cost_contrast_weight * cost_contrast_loss(tag_logits.float(), targets, owners)
        accelerator.backward(loss)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
        losses.append(float(loss.detach()))
    return sum(len(g.suffixes) for g in encoded), time.monotonic() - started, losses
