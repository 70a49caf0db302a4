"""`POST /v1/chat/completions`: OpenAI-compatible, so the official `openai` client works.

Costs, preset and documents are extra body fields (`extra_body=` in the openai client); the
reply's content is the user-facing text and the extra `askwise` field holds the action,
the interpretations of a multi-answer and the costs applied.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import APIRouter, Request

from askwise.policy.prompt import Turn

from ..errors import APIError
from ..protocol import (
    ChatCompletion,
    ChatCompletionChoice,
    ChatCompletionMessage,
    OpenAIChatRequest,
)
from ..service import Prepared, Reply, TurnRequest, documents_from, new_id, now
from .flow import serve_turn

router = APIRouter(tags=["openai"])


def _reject_unsupported(body: OpenAIChatRequest) -> None:
    if body.n != 1:
        raise APIError(400, "n must be 1: the policy takes one action per turn", param="n",
                       code="unsupported_parameter")
    if body.tools:
        raise APIError(400, "tools are not supported by a clarification policy", param="tools",
                       code="unsupported_parameter")
    if body.stop:
        raise APIError(400, "stop is not supported: the action format decides where a reply ends",
                       param="stop", code="unsupported_parameter")
    if body.response_format and body.response_format.get("type", "text") != "text":
        raise APIError(400, "response_format must be text: replies follow the action format",
                       param="response_format", code="unsupported_parameter")
    if body.max_tokens and body.max_completion_tokens and body.max_tokens != body.max_completion_tokens:
        raise APIError(400, "max_tokens and max_completion_tokens disagree; send one",
                       param="max_completion_tokens", code="invalid_request")


@router.post("/v1/chat/completions", responses={200: {
    "model": ChatCompletion, "content": {"text/event-stream": {}},
    "description": "JSON, or server-sent chat.completion.chunk events with stream=true"}})
async def chat_completions(body: OpenAIChatRequest, request: Request):
    """OpenAI's chat completions; the policy's action and costs are in the `askwise` field."""
    _reject_unsupported(body)
    service = request.app.state.service
    turns = [Turn("system" if m.role == "developer" else m.role, m.text()) for m in body.messages]
    turn = TurnRequest(
        turns=turns, documents=documents_from(body.documents), preset=body.preset,
        costs=body.costs, target=body.target, model=body.model, temperature=body.temperature, top_p=body.top_p,
        max_tokens=body.max_completion_tokens or body.max_tokens, seed=body.seed,
    )
    completion_id, created = new_id("chatcmpl"), now()

    def envelope(prepared: Prepared, kind: str) -> dict:
        return {"id": completion_id, "object": kind, "created": created, "model": prepared.model}

    def usage(reply: Reply) -> dict:
        c = reply.completion
        return {"prompt_tokens": c.prompt_tokens, "completion_tokens": c.completion_tokens,
                "total_tokens": c.prompt_tokens + c.completion_tokens}

    def render_json(prepared: Prepared, reply: Reply) -> dict:
        result = service.result(prepared, reply)
        return ChatCompletion(
            id=completion_id, created=created, model=prepared.model,
            choices=[ChatCompletionChoice(message=ChatCompletionMessage(content=result.message),
                                          finish_reason=reply.completion.finish_reason)],
            usage=usage(reply), askwise=result,
        ).model_dump(mode="json")

    include_usage = bool(body.stream_options and body.stream_options.include_usage)

    async def render_stream(prepared: Prepared, events) -> AsyncIterator[dict]:
        chunk = envelope(prepared, "chat.completion.chunk")

        def choice(delta: dict, finish: str | None = None) -> dict:
            return {**chunk, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

        yield choice({"role": "assistant", "content": ""})
        async for kind, value in events:
            if kind == "action":
                yield {**choice({}), "askwise": value.payload()}
            elif kind == "delta":
                yield choice({"content": value})
            else:
                result = service.result(prepared, value)
                yield {**choice({}, value.completion.finish_reason),
                       "askwise": result.model_dump(mode="json")}
                if include_usage:
                    yield {**chunk, "choices": [], "usage": usage(value)}

    return await serve_turn(request, turn, stream=body.stream, endpoint="chat_completions",
                            render_json=render_json, render_stream=render_stream)
