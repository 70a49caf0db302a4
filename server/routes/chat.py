"""`POST /v1/chat`: the native endpoint, with the policy's action as first-class fields."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import APIRouter, Request

from askwise.policy.prompt import Turn

from ..protocol import ChatRequest, ChatResponse, Usage
from ..service import Prepared, Reply, TurnRequest, documents_from, new_id, now
from .flow import serve_turn

router = APIRouter(tags=["chat"])


def _usage(reply: Reply) -> Usage:
    c = reply.completion
    return Usage(prompt_tokens=c.prompt_tokens, completion_tokens=c.completion_tokens,
                 total_tokens=c.prompt_tokens + c.completion_tokens)


@router.post("/v1/chat", response_model=ChatResponse,
             responses={200: {"content": {"text/event-stream": {}},
                              "description": "JSON, or server-sent events with stream=true"}})
async def chat(body: ChatRequest, request: Request):
    """One policy turn: the action taken, what the user sees, and what it cost.

    With `stream=true`, server-sent events: `{"type": "action", "action",
    "action_probabilities", "decision", "expected"}` as soon as the action is known (with the
    value decision, before the reply's first token), `{"type": "delta", "text"}` for the
    user-visible text, then `{"type": "done", "response": <ChatResponse>}` and `[DONE]`.
    """
    service = request.app.state.service
    turn = TurnRequest(
        turns=[Turn(m.role, m.content, m.action) for m in body.messages],
        documents=documents_from(body.documents),
        preset=body.preset, costs=body.costs, target=body.target, model=body.model,
        temperature=body.temperature, top_p=body.top_p, max_tokens=body.max_tokens, seed=body.seed,
    )
    request_id, created = new_id("chat"), now()

    def render_json(prepared: Prepared, reply: Reply) -> dict:
        result = service.result(prepared, reply)
        return ChatResponse(id=request_id, created=created, model=prepared.model,
                            finish_reason=reply.completion.finish_reason,
                            usage=_usage(reply), **result.model_dump()).model_dump(mode="json")

    async def render_stream(prepared: Prepared, events) -> AsyncIterator[dict]:
        async for kind, value in events:
            if kind == "action":
                yield {"type": "action", "id": request_id, **value.payload()}
            elif kind == "delta":
                yield {"type": "delta", "text": value}
            else:
                yield {"type": "done", "response": render_json(prepared, value)}

    return await serve_turn(request, turn, stream=body.stream, endpoint="chat",
                            render_json=render_json, render_stream=render_stream)
