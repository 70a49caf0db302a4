"""The KV pool's bookkeeping: contiguous ranges, and cached prefixes matched and evicted."""

import torch

from askwise.policy.engines.kv_cache import (
    DecodeGroup,
    KVPool,
    PromptChunk,
    RangeAllocator,
    StepPlan,
    bucket,
    ragged_attention,
)


def test_ranges_are_first_fit_and_merge_when_released():
    ranges = RangeAllocator(100)
    a, b, c = ranges.allocate(30), ranges.allocate(30), ranges.allocate(30)
    assert (a, b, c) == (0, 30, 60)
    assert ranges.allocate(20) is None  # 10 left
    ranges.release(b, 30)
    assert ranges.allocate(20) == 30  # the hole is reused
    ranges.release(a, 30)
    ranges.release(30, 20)
    ranges.release(c, 30)
    assert ranges.free_tokens == 100 and ranges.allocate(100) == 0  # merged back into one


def pool(tokens=64, max_prefixes=4):
    return KVPool(torch, layers=2, kv_heads=1, head_dim=4, tokens=tokens, dtype=torch.float32,
                  device="cpu", max_prefixes=max_prefixes)


def test_a_prefix_is_matched_by_its_longest_shared_start_and_copied_whole():
    kv = pool()
    start = kv.allocate(10)
    kv.keys[:, start:start + 10] = torch.arange(10.0)[None, :, None, None]
    prefix = kv.add_prefix(tuple(range(6)), [(start, 6)])
    assert torch.equal(kv.keys[:, prefix.start:prefix.start + 6], kv.keys[:, start:start + 6])
    assert kv.match([0, 1, 2, 9]) == (prefix, 3)  # any leading part of it serves
    assert kv.match([7, 8]) == (None, 0)
    assert kv.add_prefix(tuple(range(6)), [(start, 6)]) is None  # already cached


def test_only_unused_prefixes_are_evicted_to_make_room():
    kv = pool(tokens=32)
    used = kv.add_prefix(tuple(range(12)), [(0, 12)])
    idle = kv.add_prefix(tuple(range(100, 112)), [(0, 12)])
    used.refs = 1
    assert kv.allocate(16) is not None  # by evicting the idle one
    assert idle not in kv.prefixes and kv.prefixes == [used]
    assert kv.allocate(16) is None  # the used one stays


def test_bucketed_sizes_are_few_and_pad_by_at_most_a_quarter():
    sizes = [bucket(n) for n in range(1, 2049)]
    assert sizes[:32] == list(range(1, 33))  # decode steps keep their exact size
    assert all(n <= b <= 1.25 * n for n, b in zip(range(1, 2049), sizes))
    assert sizes == sorted(sizes) and len(set(sizes)) <= 60


def test_padded_steps_and_chunks_attend_as_unpadded_ones():
    """A step padded to a bucket (extra tokens at its end, prompt chunks padded inside the
    attention) gives the real tokens the same output and writes the same pool."""
    torch.manual_seed(0)
    layer = type("Layer", (), {"layer_idx": 0})()
    heads, dim, n = 2, 4, 37  # a 37-token chunk pads to 40 queries and 64 keys

    def run(padding, buckets):
        kv = pool(tokens=128)
        kv.keys.copy_(torch.arange(kv.keys.numel(), dtype=torch.float32).view_as(kv.keys).sin())
        kv.values.copy_(kv.keys.cos())
        decode = DecodeGroup(queries=torch.tensor([0]), gather=torch.arange(7),
                             valid=torch.ones(1, 7, dtype=torch.bool), width=7)
        chunk = PromptChunk(q_start=1, n=n, prefix_start=100, prefix_len=3, own_start=20, before=0)
        write = torch.tensor([6, *range(20, 20 + n)])
        plan = StepPlan(kv, write, [decode], [chunk], buckets=buckets)
        generator = torch.Generator().manual_seed(1)
        query, key, value = (torch.cat([torch.randn(1, h, 1 + n, dim, generator=generator),
                                        torch.full((1, h, padding, dim), 7.0)], dim=2)
                             for h in (heads, 1, 1))
        out, _ = ragged_attention(layer, query, key, value, None, askwise_step=plan)
        return out[0, :1 + n], out[0, 1 + n:], kv

    plain, _, plain_pool = run(padding=0, buckets=False)
    padded, tail, padded_pool = run(padding=3, buckets=True)
    assert torch.allclose(plain, padded, atol=1e-5)
    assert torch.equal(tail, torch.zeros_like(tail))
    assert torch.equal(plain_pool.keys, padded_pool.keys)
    assert torch.equal(plain_pool.values, padded_pool.values)
