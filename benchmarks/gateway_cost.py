"""The gateway's own cost per request, with the model's time taken out of the picture.

The backend is an OpenAI-compatible server that answers at once (the tests' scripted
backend, model "untagged"), so whatever the gateway adds is all there is to see. The
baseline is the same backend asked directly, in the same run:

    python benchmarks/gateway_cost.py --requests 1000

Prints requests/s and ms per request for both paths at 1 and 8 clients. The difference at 1
client is what one request pays for the extra hop, validation, prompt and parsing.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from helpers import ServerProcess, free_port, gateway  # noqa: E402

BACKEND = Path(__file__).resolve().parents[1] / "tests" / "integration" / "misbehaving_backend.py"


async def rate(url: str, body: dict, n: int, clients: int) -> float:
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        left = n

        async def worker():
            nonlocal left
            while left > 0:
                left -= 1
                (await client.post(url, json=body)).raise_for_status()

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        return n / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8])
    args = parser.parse_args()
    question = [{"role": "user", "content": "Who won the world cup?"}]
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        backend = ServerProcess([sys.executable, str(BACKEND), str(port)], port,
                                Path(tmp) / "backend.log", "/health").start(60)
        server = gateway(Path(tmp), "--backend", "openai", "--backend-url", backend.url + "/v1",
                         "--model", "untagged", "--log-level", "warning", "--max-in-flight", "256")
        try:
            direct_url, direct_body = backend.url + "/v1/chat/completions", {"model": "untagged",
                                                                            "messages": question}
            gateway_url, gateway_body = server.url + "/v1/chat", {"messages": question,
                                                                  "preset": "voice"}
            asyncio.run(rate(gateway_url, gateway_body, 50, 1))  # warm-up
            print("| clients | backend alone req/s | through the gateway req/s | "
                  "ms per request, alone | through the gateway | added ms |")
            print("| --- | --- | --- | --- | --- | --- |")
            for clients in args.clients:
                alone = asyncio.run(rate(direct_url, direct_body, args.requests, clients))
                through = asyncio.run(rate(gateway_url, gateway_body, args.requests, clients))
                print(f"| {clients} | {alone:.0f} | {through:.0f} | {1000 / alone:.2f} | "
                      f"{1000 / through:.2f} | {1000 / through - 1000 / alone:+.2f} |")
        finally:
            server.stop()
            backend.stop()


if __name__ == "__main__":
    main()
