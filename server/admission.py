"""Bounded admission: a fixed number of requests served at once, a bounded queue behind them.

Past both bounds a request is refused at once with 429 + Retry-After rather than parked in an
unbounded queue, so overload shows up at the client as a retryable answer, never as a hang.
A queued request that waits longer than `queue_timeout_s` gets the same 429. Slots are handed
to waiters in arrival order. On shutdown the gate closes: queued and in-flight requests
finish, new ones get 503.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

from .errors import APIError

Release = Callable[[], None]


class Admission:
    def __init__(self, max_in_flight: int, max_queued: int, queue_timeout_s: float,
                 on_change: Callable[[int, int], None] = lambda in_flight, queued: None):
        self.max_in_flight, self.max_queued = max_in_flight, max_queued
        self.queue_timeout_s = queue_timeout_s
        self.in_flight = 0
        self.closed = False
        self._waiters: deque[asyncio.Future] = deque()
        self._on_change = on_change

    @property
    def queued(self) -> int:
        return len(self._waiters)

    def _changed(self) -> None:
        self._on_change(self.in_flight, self.queued)

    def _busy(self, why: str) -> APIError:
        return APIError(429, f"server is busy: {why}; retry shortly", code="server_busy",
                        retry_after=1)

    async def acquire(self) -> Release:
        """A serving slot, waiting in the queue if need be. Returns the (idempotent) release."""
        if self.closed:
            raise APIError(503, "server is shutting down", code="shutting_down", retry_after=1)
        if self.in_flight < self.max_in_flight and not self._waiters:
            self.in_flight += 1
        elif len(self._waiters) < self.max_queued:
            await self._wait_for_slot()
        else:
            raise self._busy(f"{self.in_flight} requests in flight and {self.queued} queued "
                             f"(limits {self.max_in_flight} and {self.max_queued})")
        self._changed()
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self._hand_over()

        return release

    async def _wait_for_slot(self) -> None:
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self._changed()
        try:
            await asyncio.wait_for(asyncio.shield(waiter), self.queue_timeout_s)
        except TimeoutError:
            if waiter.done():
                return  # the slot came as the clock ran out
            self._leave_queue(waiter)
            raise self._busy(f"queued for {self.queue_timeout_s:g} s without a free slot") from None
        except asyncio.CancelledError:
            # The client went away while queued.
            if waiter.done():
                self._hand_over()
            else:
                self._leave_queue(waiter)
            raise

    def _leave_queue(self, waiter: asyncio.Future) -> None:
        waiter.cancel()
        self._waiters.remove(waiter)
        self._changed()

    def _hand_over(self) -> None:
        """A slot comes free: it goes to the longest waiter, else back to the pool."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # in_flight stays: the slot changes hands
                self._changed()
                return
        self.in_flight -= 1
        self._changed()

    def close(self) -> None:
        self.closed = True
