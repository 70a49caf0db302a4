"""The KV pool's bookkeeping: contiguous ranges, and cached prefixes matched and evicted."""

import torch

from askwise.policy.engines.kv_cache import KVPool, RangeAllocator


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
    kv.keys[:, :, start:start + 10] = torch.arange(10.0)[None, None, :, None]
    prefix = kv.add_prefix(tuple(range(6)), [(start, 6)])
    assert torch.equal(kv.keys[:, :, prefix.start:prefix.start + 6], kv.keys[:, :, start:start + 6])
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
