"""Starting real servers on 127.0.0.1 for the integration tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from askwise.net import free_port  # noqa: F401  (tests import it from here)


class ServerProcess:
    """A subprocess serving HTTP on loopback, with its log kept for failure messages."""

    def __init__(self, args: list[str], port: int, log: Path, ready_path: str = "/healthz",
                 env: dict | None = None):
        self.args, self.port, self.log, self.ready_path = args, port, log, ready_path
        self.env = {**os.environ, **(env or {})}
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 300) -> ServerProcess:
        self.process = subprocess.Popen(self.args, stdout=open(self.log, "wb"),
                                        stderr=subprocess.STDOUT, env=self.env,
                                        start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.args} exited early:\n{self.tail()}")
            try:
                if httpx.get(self.url + self.ready_path, timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        self.stop()
        raise TimeoutError(f"{self.args} not ready after {timeout_s} s:\n{self.tail()}")

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def gateway(tmp_dir: Path, *flags: str, ready_path: str = "/readyz", timeout_s: float = 300,
            env: dict | None = None, cpus: str | None = None,
            command: list[str] | None = None) -> ServerProcess:
    """`askwise serve` exactly as a user runs it, on a free port (on `cpus` only, if given);
    `command` replaces `python -m askwise serve` (a benchmark's baseline gateway)."""
    port = free_port()
    args = ["taskset", "-c", cpus] if cpus else []
    args += [*(command or [sys.executable, "-m", "askwise", "serve"]), "--port", str(port),
             "--torch-threads", "1", *flags]
    return ServerProcess(args, port, tmp_dir / f"gateway-{port}.log", ready_path, env).start(timeout_s)


def wait_for(condition, timeout_s: float = 15, interval_s: float = 0.1) -> bool:
    """Poll `condition` until it holds or time runs out; its last value."""
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:
        time.sleep(interval_s)
    return condition()


def metric(base_url: str, series: str, headers: dict | None = None) -> float:
    """One sample from a gateway's /metrics, by its exact series (name and labels)."""
    prefix = series + " "
    for line in httpx.get(f"{base_url}/metrics", headers=headers, timeout=5).text.splitlines():
        if line.startswith(prefix):
            return float(line[len(prefix):])
    raise KeyError(series)


def sse_events(response):
    """The `data:` payloads of a server-sent event stream, JSON-decoded but for [DONE]."""
    events = []
    for line in response.iter_lines():
        if line.startswith("data: "):
            payload = line[6:]
            events.append(payload if payload == "[DONE]" else json.loads(payload))
    return events
