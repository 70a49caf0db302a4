"""The in-process engine's KV cache: one pool allocated at load, sequences in contiguous ranges
of it, prompt prefixes shared between requests, and the attention that reads them.

- **A fixed budget.** The pool holds `tokens` positions of every layer's keys and values and
  is allocated (and touched) once, so memory follows the setting, not the traffic. A request
  reserves its prompt plus `max_tokens` when it joins the batch; one that does not fit waits.
- **Contiguous ranges.** Each sequence owns one range of positions, so attention reads its
  keys as a view. Ranges are handed out first-fit; a request that finds no range long enough
  waits for running ones to finish (each does within `max_tokens` steps), and when nothing
  runs, every range is free.
- **Shared prefixes.** Requests of one application share a long first system message
  (instructions, often the same documents), and the same question comes back. A finished
  prefill leaves its prompt's keys in a `Prefix`; a later request whose prompt starts with
  the same tokens attends to them in place and prefills only the rest. Keys at a position
  depend only on the tokens up to it, so any leading part of a cached prefix serves as well.
  Unused prefixes are evicted, least recently used first, when a request needs the room.
- **Ragged steps.** One forward runs every running sequence's new tokens flattened into one
  row, with no padding: prompt chunks of joining requests next to one token of each decoding
  one. `ragged_attention` writes the step's keys and values into the pool, then attends each
  query to its prefix and its own range: the decoding rows as one batch (their keys gathered
  and padded), each prompt chunk on its own, causally, both through SDPA.
- **Few shapes in reduced precision.** PyTorch's bf16 CPU kernels (oneDNN matmuls, the
  flash-attention brgemm kernels) keep a compiled kernel for every shape they meet, with no
  bound that PyTorch exposes, and a ragged step's shapes change every step: serving grew by
  ~20 MB a minute. With `buckets` on, a step's token count and each prompt chunk's query and
  key lengths are padded up to a few sizes (`bucket`, `KEY_BUCKET`), so the caches fill once
  and stop. Float32 runs on MKL, keeps no such cache, and stays unpadded.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

NAME = "askwise_ragged"

# Exact sizes up to this many tokens (a decode step has one token per running request)...
EXACT_UP_TO = 32
# ...and prompt-chunk keys in multiples of this (the flash kernel's key tail takes few values).
KEY_BUCKET = 64


def bucket(n: int) -> int:
    """`n` itself when small, else the next size of the form k * 2**e with k in 4..7: at most
    four sizes per doubling, at most 25% padding."""
    if n <= EXACT_UP_TO:
        return n
    step = 1 << (n.bit_length() - 3)  # a quarter of the power of two below n
    return -(-n // step) * step


class RangeAllocator:
    """First-fit allocation of contiguous ranges in [0, capacity)."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self._free: list[tuple[int, int]] = [(0, capacity)]  # (start, length), sorted by start

    @property
    def free_tokens(self) -> int:
        return sum(length for _, length in self._free)

    def allocate(self, length: int) -> int | None:
        for i, (start, size) in enumerate(self._free):
            if size >= length:
                if size == length:
                    del self._free[i]
                else:
                    self._free[i] = (start + length, size - length)
                return start
        return None

    def release(self, start: int, length: int) -> None:
        self._free.append((start, length))
        self._free.sort()
        merged: list[tuple[int, int]] = []
        for begin, size in self._free:
            if merged and merged[-1][0] + merged[-1][1] == begin:
                merged[-1] = (merged[-1][0], merged[-1][1] + size)
            else:
                merged.append((begin, size))
        self._free = merged


@dataclass(eq=False)
class Prefix:
    """Cached keys and values of a prompt's leading tokens, at pool[start:start + len(tokens)]."""

    tokens: tuple[int, ...]
    start: int
    refs: int = 0  # running sequences that attend to it
    last_used: float = field(default_factory=time.monotonic)


class KVPool:
    """Every layer's keys and values for `tokens` positions, and who holds which range."""

    def __init__(self, torch, *, layers: int, kv_heads: int, head_dim: int, tokens: int,
                 dtype, device, max_prefixes: int = 64):
        # zeros, not empty: padded reads of never-written positions must be finite (they are
        # masked to a weight of exactly 0, and 0 * NaN would still be NaN).
        # (layer, position, kv head, dim): a position's heads lie together, so gathering a
        # batch's positions copies whole rows (benchmarks/decode_gather.py).
        self.keys = torch.zeros(layers, tokens, kv_heads, head_dim, dtype=dtype, device=device)
        self.values = torch.zeros_like(self.keys)
        self.tokens = tokens
        self.ranges = RangeAllocator(tokens)
        self.prefixes: list[Prefix] = []
        self.max_prefixes = max_prefixes

    @property
    def bytes(self) -> int:
        return 2 * self.keys.numel() * self.keys.element_size()

    def allocate(self, length: int) -> int | None:
        """A range of `length` positions, evicting unused prefixes (least recent first) to make
        room; None when the running sequences hold too much for now."""
        while (start := self.ranges.allocate(length)) is None:
            if not self._evict_one():
                return None
        return start

    def release(self, start: int, length: int) -> None:
        self.ranges.release(start, length)

    def match(self, tokens: list[int]) -> tuple[Prefix | None, int]:
        """The cached prefix sharing the most leading tokens with `tokens`, and how many."""
        best, best_len = None, 0
        for prefix in self.prefixes:
            shared = _common_length(prefix.tokens, tokens)
            if shared > best_len:
                best, best_len = prefix, shared
        return best, best_len

    def add_prefix(self, tokens: tuple[int, ...], parts: list[tuple[int, int]]) -> Prefix | None:
        """Cache `tokens`, whose keys and values are now at the pool ranges `parts` ((start,
        length), in order): copied into a range of their own, if one is free without evicting."""
        if any(p.tokens == tokens for p in self.prefixes):
            return None
        if len(self.prefixes) >= self.max_prefixes and not self._evict_one():
            return None
        start = self.ranges.allocate(len(tokens))
        if start is None:
            return None
        at = start
        for begin, length in parts:
            self.keys[:, at:at + length] = self.keys[:, begin:begin + length]
            self.values[:, at:at + length] = self.values[:, begin:begin + length]
            at += length
        prefix = Prefix(tokens, start)
        self.prefixes.append(prefix)
        return prefix

    def _evict_one(self) -> bool:
        idle = [p for p in self.prefixes if p.refs == 0]
        if not idle:
            return False
        oldest = min(idle, key=lambda p: p.last_used)
        self.prefixes.remove(oldest)
        self.ranges.release(oldest.start, len(oldest.tokens))
        return True


def _common_length(a, b) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


@dataclass
class DecodeGroup:
    """Decoding sequences: one query token each."""

    queries: object  # (rows,) long: each row's token in the step
    gather: object  # (rows * width,) long: pool positions of each row's keys (prefix, then
    # its own), padded by repeating the last
    valid: object  # (rows, width) bool: which gathered positions are real
    width: int


@dataclass
class PromptChunk:
    """`n` prompt tokens of one sequence, after `before` tokens already in its own range."""

    q_start: int
    n: int
    prefix_start: int
    prefix_len: int
    own_start: int
    before: int


@dataclass
class StepPlan:
    """Where a step's tokens go in the pool and what each attends to; built once per step,
    read by every layer."""

    pool: KVPool
    write: object  # (tokens,) long: pool position of each real token of the step; padding
    # tokens after them (see `bucket`) write nothing and attend to nothing
    groups: list[DecodeGroup]
    chunks: list[PromptChunk]
    buckets: bool = False  # pad prompt chunks' query and key lengths to few sizes


def ragged_attention(module, query, key, value, attention_mask, scaling: float | None = None,
                     askwise_step: StepPlan | None = None, **kwargs):
    """Attention over the pool for a step laid out by `askwise_step` (see the module doc).
    `query` is (1, heads, tokens, head_dim); returns (1, tokens, heads, head_dim)."""
    import torch

    if askwise_step is None:
        from transformers.integrations.sdpa_attention import sdpa_attention_forward

        return sdpa_attention_forward(module, query, key, value, attention_mask,
                                      scaling=scaling, **kwargs)
    plan, layer = askwise_step, module.layer_idx
    keys, values = plan.pool.keys[layer], plan.pool.values[layer]  # (positions, kv_heads, dim)
    real = len(plan.write)
    keys.index_copy_(0, plan.write, key[0, :, :real].transpose(0, 1))
    values.index_copy_(0, plan.write, value[0, :, :real].transpose(0, 1))
    heads, kv_heads, dim = query.shape[1], keys.shape[1], query.shape[-1]
    scale = scaling if scaling is not None else dim ** -0.5
    # Padding rows get zeros, so the layers after attention see finite numbers there.
    out = (query.new_empty if real == query.shape[2] else query.new_zeros)(query.shape[2], heads, dim)

    for g in plan.groups:
        # One SDPA call over the rows' gathered keys: its CPU kernel takes grouped heads and
        # strided inputs, where small batched matmuls ran several times slower.
        rows = len(g.queries)
        q = query[0][:, g.queries].transpose(0, 1).unsqueeze(2)  # (rows, heads, 1, dim)
        k = keys.index_select(0, g.gather).view(rows, g.width, kv_heads, dim).transpose(1, 2)
        v = values.index_select(0, g.gather).view(rows, g.width, kv_heads, dim).transpose(1, 2)
        mixed = torch.nn.functional.scaled_dot_product_attention(
            q, k, v, attn_mask=g.valid[:, None, None, :], scale=scale, enable_gqa=True)
        out[g.queries] = mixed[:, :, 0]

    for c in plan.chunks:
        # A prompt chunk sees its prefix, its own earlier tokens, and itself causally.
        length = c.before + c.n
        own = slice(c.own_start, c.own_start + length)
        k, v = keys[own], values[own]
        visible = (torch.arange(length, device=query.device)[None, :]
                   <= (c.before + torch.arange(c.n, device=query.device))[:, None])
        if c.prefix_len:
            span = slice(c.prefix_start, c.prefix_start + c.prefix_len)
            k, v = torch.cat([keys[span], k]), torch.cat([values[span], v])
            visible = torch.cat([visible.new_ones(c.n, c.prefix_len), visible], dim=1)
        q = query[:, :, c.q_start:c.q_start + c.n]
        k, v = k.transpose(0, 1), v.transpose(0, 1)  # (kv_heads, keys, dim)
        if plan.buckets:
            q, k, v, visible = _pad_chunk(q, k, v, visible)
        mixed = torch.nn.functional.scaled_dot_product_attention(
            q, k[None], v[None], attn_mask=visible, scale=scale, enable_gqa=True)
        out[c.q_start:c.q_start + c.n] = mixed[0, :, :c.n].transpose(0, 1)
    return out.unsqueeze(0), None


def _pad_chunk(q, k, v, visible):
    """A chunk's queries padded to `bucket` rows and its keys to a multiple of `KEY_BUCKET`:
    padded keys are zeros no query sees, padded queries see every real key and are dropped."""
    import torch.nn.functional as F

    n, length = visible.shape
    extra_q, extra_k = bucket(n) - n, -(-length // KEY_BUCKET) * KEY_BUCKET - length
    q = F.pad(q, (0, 0, 0, extra_q))
    k, v = F.pad(k, (0, 0, 0, extra_k)), F.pad(v, (0, 0, 0, extra_k))
    visible = F.pad(F.pad(visible, (0, 0, 0, extra_q), value=True), (0, extra_k), value=False)
    return q, k, v, visible


def register() -> str:
    """Make `NAME` a valid `attn_implementation` (idempotent). No mask function is registered,
    so transformers builds no mask for it: the step plan says what each query sees."""
    from transformers import AttentionInterface

    AttentionInterface.register(NAME, ragged_attention)
    return NAME
