"""What both chat endpoints do around the service: admission, metrics, JSON or SSE out.

Each endpoint supplies two renderers (a whole response; the events of a stream) and gets the
same admission control, metrics and error handling.
"""

from __future__ import annotations

import json
import time
import weakref
from collections.abc import AsyncIterator, Callable

from fastapi import Request
from fastapi.responses import JSONResponse, StreamingResponse

from ..errors import APIError
from ..service import ChatService, Prepared, Reply, TurnRequest


SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}

RenderJSON = Callable[[Prepared, Reply], dict]
RenderStream = Callable[[Prepared, AsyncIterator[tuple[str, object]]], AsyncIterator[dict]]


def sse(data: dict | str) -> str:
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    return f"data: {payload}\n\n"


def _preset_label(service: ChatService, name: str | None) -> str:
    # Only known names become label values: a client must not grow the metric's cardinality.
    name = name or "default"
    return name if name in service.presets else "invalid"


async def serve_turn(request: Request, turn: TurnRequest, *, stream: bool, endpoint: str,
                     render_json: RenderJSON, render_stream: RenderStream):
    service: ChatService = request.app.state.service
    metrics = service.metrics
    started = time.perf_counter()
    preset = _preset_label(service, turn.preset)

    def record(status: int, action: str = "none") -> None:
        metrics.requests.labels(endpoint, preset, action, str(status)).inc()
        metrics.latency.labels(endpoint).observe(time.perf_counter() - started)

    try:
        release = service.acquire()
    except APIError as exc:
        record(exc.status)
        raise
    handed_over = False
    try:
        prepared = await service.prepare(turn)
        if not stream:
            reply = await service.run(prepared)
            record(200, reply.parsed.action.value)
            return JSONResponse(render_json(prepared, reply))
        events = await service.open_stream(prepared)
        handed_over = True
    except APIError as exc:
        record(exc.status)
        raise
    finally:
        if not handed_over:
            release()
    # From here on the stream owns the slot.

    async def body() -> AsyncIterator[str]:
        action, first_text = "none", True

        async def watched():
            nonlocal action, first_text
            async for kind, value in events:
                if kind == "action":
                    action = value.value
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
