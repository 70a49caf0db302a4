"""The KV pool's layout for decode attention: gathering a batch's cached keys along the
pool's outer dimension (position-major, as the engine stores them) vs an inner one, and one
decode attention block (gather keys and values, then SDPA) both ways, in one run.

    python benchmarks/decode_gather.py --rows 32 --width 200
"""

import argparse
import time

import torch
import torch.nn.functional as F


def timed(fn, repeats: int) -> float:
    for _ in range(5):
        fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=32, help="decoding requests in the step")
    parser.add_argument("--width", type=int, default=200, help="cached keys per row")
    parser.add_argument("--pool", type=int, default=16384)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    kv_heads, heads, dim, dtype = 3, 9, 64, torch.bfloat16  # SmolLM2-135M
    inner = torch.randn(kv_heads, args.pool, dim).to(dtype)  # (kv head, position, dim)
    outer = inner.transpose(0, 1).contiguous()  # (position, kv head, dim)
    index = torch.randint(0, args.pool, (args.rows * args.width,))
    query = torch.randn(args.rows, heads, 1, dim).to(dtype)
    mask = torch.ones(args.rows, 1, 1, args.width, dtype=torch.bool)

    def block_inner():
        k = inner.index_select(1, index).view(kv_heads, args.rows, args.width, dim).transpose(0, 1)
        v = inner.index_select(1, index).view(kv_heads, args.rows, args.width, dim).transpose(0, 1)
        return F.scaled_dot_product_attention(query, k, v, attn_mask=mask, enable_gqa=True)

    def block_outer():
        k = outer.index_select(0, index).view(args.rows, args.width, kv_heads, dim).transpose(1, 2)
        v = outer.index_select(0, index).view(args.rows, args.width, kv_heads, dim).transpose(1, 2)
        return F.scaled_dot_product_attention(query, k, v, attn_mask=mask, enable_gqa=True)

    assert torch.equal(block_inner(), block_outer())
    g_in = timed(lambda: inner.index_select(1, index), args.repeats)
    g_out = timed(lambda: outer.index_select(0, index), args.repeats)
    b_in, b_out = timed(block_inner, args.repeats), timed(block_outer, args.repeats)
    print(f"bf16, {args.rows} rows x {args.width} keys, {args.threads} threads")
    print("| step | inner dimension us | position-major us | speed-up |\n| --- | --- | --- | --- |")
    print(f"| gather keys | {g_in:.0f} | {g_out:.0f} | {g_in / g_out:.2f}x |")
    print(f"| decode attention block | {b_in:.0f} | {b_out:.0f} | {b_in / b_out:.2f}x |")


if __name__ == "__main__":
    main()
