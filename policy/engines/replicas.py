"""Several replicas of one backend (vLLM servers of the same model) behind one engine.

Requests go to the healthy replica with the fewest outstanding requests (ties: the one used
least recently, so an idle set is visited in turn). Least-outstanding rather than round-robin
because generation times vary by 10-100x with the reply's length: a replica stuck on long
replies should get fewer new ones.

A replica that cannot be reached, or drops a connection before answering, is taken out at
once; a probe every `probe_interval_s` puts it back when it answers `/v1/models` again, and
`check_ready` (the gateway's /readyz) asks every replica afresh. A request that failed that
way, or that a replica refused as overloaded, is tried on another replica: chat generation
has no side effects, so a retry is safe until the first streamed chunk has reached the client.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from .base import (
    ChatMessages,
    Completion,
    Engine,
    EngineError,
    EngineUnavailable,
    EngineUnreachable,
    SamplingParams,
    StreamChunk,
)

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(eq=False)
class Replica:
    name: str
    engine: Engine
    healthy: bool = True
    outstanding: int = 0
    served: int = 0  # generation requests sent to it, for metrics
    last_used: float = 0.0


class ReplicaSet(Engine):
    def __init__(self, replicas: dict[str, Engine], probe_interval_s: float = 2.0):
        if not replicas:
            raise ValueError("a replica set needs at least one replica")
        self.replicas = [Replica(name, engine) for name, engine in replicas.items()]
        self.probe_interval_s = probe_interval_s
        self._prober: asyncio.Task | None = None

    # ------------------------------------------------------------------ choosing a replica

    def _pick(self, exclude: set[Replica]) -> Replica:
        candidates = [r for r in self.replicas if r.healthy and r not in exclude]
        if not candidates:
            down = sum(not r.healthy for r in self.replicas)
            raise EngineUnavailable(
                f"no backend replica can take the request ({down} of {len(self.replicas)} out)",
                retry_after=self.probe_interval_s)
        replica = min(candidates, key=lambda r: (r.outstanding, r.last_used))
        replica.last_used = time.monotonic()
        return replica

    def _failed(self, replica: Replica, exc: EngineError) -> None:
        if isinstance(exc, EngineUnreachable) and replica.healthy:
            replica.healthy = False
            log.warning("backend replica %s taken out: %s", replica.name, exc.message)
            self._ensure_prober()

    async def _on_some_replica(self, call: Callable[[Engine], Awaitable[T]],
                               generation: bool = True) -> T:
        """`call` on the best replica; on another if that one is down or overloaded."""
        tried: set[Replica] = set()
        while True:
            replica = self._pick(tried)
            replica.outstanding += generation
            replica.served += generation
            try:
                return await call(replica.engine)
            except EngineUnavailable as exc:
                self._failed(replica, exc)
                tried.add(replica)
                if not any(r.healthy and r not in tried for r in self.replicas):
                    raise
            finally:
                replica.outstanding -= generation

    # ------------------------------------------------------------------ Engine

    async def complete(self, messages: ChatMessages, params: SamplingParams,
                       model: str | None = None) -> Completion:
        return await self._on_some_replica(lambda engine: engine.complete(messages, params, model))

    async def stream(self, messages: ChatMessages, params: SamplingParams,
                     model: str | None = None) -> AsyncIterator[StreamChunk]:
        tried: set[Replica] = set()
        while True:
            replica = self._pick(tried)
            replica.outstanding += 1
            replica.served += 1
            started = False
            try:
                async with contextlib.aclosing(replica.engine.stream(messages, params, model)) as chunks:
                    async for chunk in chunks:
                        started = True
                        yield chunk
                return
            except EngineUnavailable as exc:
                self._failed(replica, exc)
                tried.add(replica)
                if started or not any(r.healthy and r not in tried for r in self.replicas):
                    raise
            finally:
                replica.outstanding -= 1

    async def list_models(self) -> list[str]:
        return await self._on_some_replica(lambda engine: engine.list_models(), generation=False)

    async def check_ready(self) -> None:
        """Ask every replica afresh; ready when at least one is."""
        results = await asyncio.gather(*(r.engine.check_ready() for r in self.replicas),
                                       return_exceptions=True)
        reasons = []
        for replica, result in zip(self.replicas, results):
            if isinstance(result, BaseException):
                if not isinstance(result, EngineError):
                    raise result
                if replica.healthy:
                    log.warning("backend replica %s taken out: %s", replica.name, result.message)
                replica.healthy = False
                reasons.append(f"{replica.name}: {result.message}")
            else:
                if not replica.healthy:
                    log.info("backend replica %s is back", replica.name)
                replica.healthy = True
        if len(reasons) == len(self.replicas):
            raise EngineUnavailable("; ".join(reasons), retry_after=self.probe_interval_s)
        if reasons:
            self._ensure_prober()

    async def aclose(self) -> None:
        if self._prober is not None:
            self._prober.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._prober
        for replica in self.replicas:
            await replica.engine.aclose()

    # ------------------------------------------------------------------ putting replicas back

    def _ensure_prober(self) -> None:
        if self._prober is None or self._prober.done():
            self._prober = asyncio.get_running_loop().create_task(self._probe_until_all_back())

    async def _probe_until_all_back(self) -> None:
        while any(not r.healthy for r in self.replicas):
            await asyncio.sleep(self.probe_interval_s)
            for replica in [r for r in self.replicas if not r.healthy]:
                try:
                    await replica.engine.check_ready()
                except EngineError:
                    continue
                replica.healthy = True
                log.info("backend replica %s is back", replica.name)
