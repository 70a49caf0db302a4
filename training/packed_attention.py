"""Attention for the fine-tune's packed rows that computes only what their 4D mask keeps.

A packed row (finetune.py) is a shared prefix, then several examples' tails, each tail seeing
the prefix and itself only. Handed the row's 4D mask, SDPA scores every query against every
key and masks afterwards. With a prefix of a few hundred tokens and a dozen short tails,
most of those scores belong to tails looking at other tails, and are thrown away.

Here a row runs as two SDPA calls:
- the prefix against itself, causally (`is_causal`: the kernel skips the upper triangle);
- its tails as a batch, each padded to the longest, against the prefix's keys followed by its
  own keys, under a mask that is the prefix then a causal triangle;
and the padding after the last tail gets zeros (no label and no other token looks at it).
Every real token sees exactly the keys the 4D mask lets it see, so outputs and gradients are
those of SDPA over the whole mask (tests/integration/test_finetune_packing.py checks both).

The layout travels as the `packed_spans` keyword of the model's forward, which transformers
passes down to every attention call: per row, the prefix length and the tails' lengths. A
forward without it (generation, a model used elsewhere) runs plain SDPA.
"""

from __future__ import annotations

NAME = "askwise_packed"


def _tails(module, query, key, value, prefix: int, tails: list[int], dropout, scaling):
    """Output of a row's tails, (sum of tails, heads, head_dim), in the row's order."""
    import torch
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    device, width = query.device, max(tails)
    starts = torch.tensor([prefix + sum(tails[:i]) for i in range(len(tails))], device=device)
    lengths = torch.tensor(tails, device=device)
    offsets = torch.arange(width, device=device)
    real = offsets < lengths[:, None]  # (tails, width)
    # Padding slots read the tail's first token; the mask and the final gather drop them.
    index = starts[:, None] + torch.where(real, offsets, 0)

    def gather(x):  # (1, heads, row, dim) -> (tails, heads, width, dim)
        return x[0][:, index].permute(1, 0, 2, 3)

    def with_prefix(x):
        return torch.cat([x[:, :, :prefix].expand(len(tails), -1, -1, -1), gather(x)], dim=2)

    mask = torch.cat([torch.ones(len(tails), width, prefix, dtype=torch.bool, device=device),
                      (offsets[None, :, None] >= offsets[None, None, :]) & real[:, None, :]], dim=2)
    out, _ = sdpa_attention_forward(module, gather(query), with_prefix(key), with_prefix(value),
                                    mask[:, None], dropout=dropout, scaling=scaling, is_causal=False)
    return out[real]  # (tails, width, heads, dim) -> the real tokens, tail after tail


def packed_attention(module, query, key, value, attention_mask, dropout: float = 0.0,
                     scaling: float | None = None, packed_spans=None, **kwargs):
    import torch
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    if packed_spans is None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout,
                                      scaling=scaling, **kwargs)
    rows = []
    for b, (prefix, tails) in enumerate(packed_spans):
        q, k, v = query[b:b + 1], key[b:b + 1], value[b:b + 1]
        parts = []  # each (tokens, heads, head_dim), as sdpa_attention_forward lays them out
        if prefix:
            head, _ = sdpa_attention_forward(module, q[:, :, :prefix], k[:, :, :prefix], v[:, :, :prefix],
                                             None, dropout=dropout, scaling=scaling, is_causal=True)
            parts.append(head[0])
        if tails:
            parts.append(_tails(module, q, k, v, prefix, tails, dropout, scaling))
        end = prefix + sum(tails)
        if end < query.shape[2]:
            parts.append(query.new_zeros(query.shape[2] - end, query.shape[1], value.shape[-1]))
        rows.append(torch.cat(parts))
    return torch.stack(rows), None


def register() -> str:
    """Make `NAME` a valid `attn_implementation` (idempotent); returns it. The mask function is
    SDPA's: a packed batch brings its own 4D mask, which transformers passes through as is."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(NAME, packed_attention)
    AttentionMaskInterface.register(NAME, sdpa_mask)
    return NAME
