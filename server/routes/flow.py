"""What both chat endpoints do around the service: admission, metrics, JSON or SSE out.

Each endpoint supplies two renderers (a whole response; the events of a stream) and gets the
same admission control, metrics and error handling.
"""

from __future__ import annotations

import asyncio
import json
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

from fastapi import Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from ..errors import APIError
from ..service import ChatService, Prepared, Reply, TurnRequest

# nginx's status for "the client closed the connection first"; only metrics ever see it.
CLIENT_CLOSED = 499
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}

T = TypeVar("T")
RenderJSON = Callable[[Prepared, Reply], dict]
RenderStream = Callable[[Prepared, AsyncIterator[tuple[str, object]]], AsyncIterator[dict]]


def sse(data: dict | str) -> str:
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    return f"data: {payload}\n\n"


def _preset_label(service: ChatService, name: str | None) -> str:
    # Only known names become label values: a client must not grow the metric's cardinality.
    name = name or "default"
    return name if name in service.presets else "invalid"


async def cancel_on_disconnect(request: Request, work: Awaitable[T]) -> T | None:
    """Run `work`, cancelling it if the client hangs up first (then None).

    Starlette cancels a streaming response when its client goes away, but not a handler
    that is still waiting for a whole reply: without this, a request abandoned in the queue
    or in the backend would keep its slot and its GPU time until the model finished.
    The body has been read, so the next ASGI message can only be the disconnect.
    """
    async def disconnected() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(disconnected())
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for pending in (task, watcher):
            if not pending.done():
                pending.cancel()
        await asyncio.gather(task, watcher, return_exceptions=True)
    if task.cancelled():
        return None
    return task.result()


async def serve_turn(request: Request, turn: TurnRequest, *, stream: bool, endpoint: str,
                     render_json: RenderJSON, render_stream: RenderStream):
    service: ChatService = request.app.state.service
    metrics = service.metrics
    started = time.perf_counter()
    preset = _preset_label(service, turn.preset)

    def record(status: int, action: str = "none") -> None:
        metrics.requests.labels(endpoint, preset, action, str(status)).inc()
        metrics.latency.labels(endpoint).observe(time.perf_counter() - started)

    async def admitted():
        """Queue for a slot, then run the turn (or open its stream) while holding it."""
        release = await service.admission.acquire()
        handed_over = False
        try:
            prepared = await service.prepare(turn)
            if not stream:
                return prepared, await service.run(prepared), None
            events = await service.open_stream(prepared)
            handed_over = True
            return prepared, events, release
        finally:
            if not handed_over:
                release()

    try:
        outcome = await cancel_on_disconnect(request, admitted())
    except APIError as exc:
        record(exc.status)
        raise
    if outcome is None:
        record(CLIENT_CLOSED)
        return Response(status_code=CLIENT_CLOSED)
    prepared, result, release = outcome
    if not stream:
        record(200, result.parsed.action.value)
        return JSONResponse(render_json(prepared, result))
    events = result
    # From here on the stream owns the slot.

    async def body() -> AsyncIterator[str]:
        action, first_text = "none", True

        async def watched():
            nonlocal action, first_text
            async for kind, value in events:
                if kind == "action":
                    action = value.action.value
                elif kind == "delta" and first_text:
                    first_text = False
                    metrics.ttft.labels(endpoint).observe(time.perf_counter() - started)
                yield kind, value

        try:
            async for data in render_stream(prepared, watched()):
                yield sse(data)
            yield sse("[DONE]")
            record(200, action)
        except APIError as exc:
            # The 200 header is gone: report in-band, as OpenAI clients expect.
            yield sse(exc.body())
            record(exc.status, action)
        finally:
            release()

    chunks = body()
    # A client gone before the first byte means the generator never runs its `finally`.
    weakref.finalize(chunks, release)
    return StreamingResponse(chunks, media_type="text/event-stream", headers=SSE_HEADERS)
