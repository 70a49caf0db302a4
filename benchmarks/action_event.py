"""How soon a stream says which action it took: the value decision (`--decision value`, the
head read off the prefill, the action event sent before any reply token) against the
policy's own tag (`--decision policy`, the action event sent once the reply's tag is
decoded), on the same embedded gateway build, the same policy and the same AmbigQA
dev-selection requests at the `voice` preset.

Both gateways run at once, one torch thread each. At 1 client the requests alternate
between them one at a time; at N clients, N requests go to one gateway at once, then the
same N to the other, the order flipping every round, so drift on a noisy machine hits both.
Prints the median and mean time from sending a request to its `action` event, per gateway
and client count, and the ratio value / policy.

    python benchmarks/action_event.py --items 40 --clients 1 8
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from calibration_loop import ambigqa_requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from helpers import gateway  # noqa: E402  (the tests' own server launcher)


def to_action(url: str, body: dict) -> tuple[float, dict]:
    """Seconds from sending `body` to its stream's action event, and that event."""
    sent = time.perf_counter()
    with httpx.stream("POST", url + "/v1/chat", json={**body, "stream": True}, timeout=600) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                event = json.loads(line[6:])
                if event.get("type") == "action":
                    took = time.perf_counter() - sent
                    for _ in response.iter_lines():  # read the reply to its end, as a client does
                        pass
                    return took, event
    raise RuntimeError("the stream ended without an action event")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=40)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--preset", default="voice")
    parser.add_argument("--adapter", default=None, help="a policy with a value head (default: shipped)")
    args = parser.parse_args()
    requests = [{**r, "preset": args.preset, "max_tokens": 64}
                for r in ambigqa_requests("dev-selection", args.items)]
    flags = ["--adapter", args.adapter] if args.adapter else []
    with tempfile.TemporaryDirectory() as tmp:
        logs = Path(tmp)
        servers = {"value": gateway(logs, "--decision", "value", *flags),
                   "policy": gateway(logs, "--decision", "policy", *flags)}
        try:
            for server in servers.values():
                to_action(server.url, requests[0])  # warm both
            results = {}
            for clients in args.clients:
                times = {name: [] for name in servers}
                decided = {name: [] for name in servers}
                rounds = [requests[k:k + clients] for k in range(0, len(requests), clients)]
                with ThreadPoolExecutor(clients) as pool:
                    for r, batch in enumerate(rounds):
                        order = list(servers)[:: 1 if r % 2 == 0 else -1]
                        for name in order:
                            url = servers[name].url
                            for took, event in pool.map(lambda body, u=url: to_action(u, body), batch):
                                times[name].append(took)
                                decided[name].append(event["decision"])
                        print(f"\r{clients} clients: round {r + 1}/{len(rounds)}", end="", file=sys.stderr)
                print(file=sys.stderr)
                assert set(decided["value"]) == {"value"} and set(decided["policy"]) == {"policy"}
                results[clients] = times
        finally:
            for server in servers.values():
                server.stop()
    print(f"{len(requests)} AmbigQA dev-selection requests at preset {args.preset}, streamed; "
          "time from sending to the action event\n")
    print("| clients | decision | median ms | mean ms |\n| --- | --- | --- | --- |")
    for clients, times in results.items():
        for name, values in times.items():
            print(f"| {clients} | {name} | {1000 * statistics.median(values):.0f} | "
                  f"{1000 * statistics.mean(values):.0f} |")
    print()
    for clients, times in results.items():
        ratio = statistics.median(times["value"]) / statistics.median(times["policy"])
        print(f"{clients} clients: median time to the action event, value / policy: {ratio:.2f}x")


if __name__ == "__main__":
    main()
