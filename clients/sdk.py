"""Python SDK for the askwise gateway's native `/v1/chat` endpoint.

    from askwise.client import AskwiseClient

    with AskwiseClient("http://127.0.0.1:8000") as client:
        reply = client.chat("Who won the world cup?", preset="voice")
        reply.action            # Action.CLARIFY, ANSWER or MULTI_ANSWER
        reply.message           # what to show or speak
        reply.action_probabilities  # answer=0.81 multi_answer=0.02 clarify=0.17 (or None)
        reply.expected          # {"clarify": ExpectedOut(f1=0.57, words=2.5, questions=1.0), ...}
        reply.options           # a question's options: ["the 2014 tournament", "the 2018 tournament"]

Requests and responses are the server's own pydantic models (`askwise.server.protocol`):
what the SDK sends is validated by the same schema the gateway applies, and what it returns
is a `ChatResponse`, so the two cannot drift apart.

Errors: the gateway answers in the OpenAI error shape; each status becomes a typed
exception carrying that body (`error.message`, `error.type`, `error.param`, `error.code`).
429 and 503 are retried with back-off, honouring `Retry-After`, up to `max_retries` times.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import httpx

from askwise.policy.actions import Action
from askwise.server.protocol import (
    ActionProbabilities,
    ChatRequest,
    ChatResponse,
    DocumentIn,
    ExpectedOut,
    MessageIn,
)

RETRY_STATUSES = (429, 503)
DEFAULT_TIMEOUT_S = 120.0
MAX_BACKOFF_S = 30.0


class AskwiseError(Exception):
    """An error answer from the gateway (or no answer at all: status 0)."""

    def __init__(self, status: int, message: str, type: str | None = None, param: str | None = None,
                 code: str | None = None, retry_after: float | None = None):
        super().__init__(f"{status} {type or 'error'}: {message}")
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code
        self.retry_after = retry_after


class BadRequestError(AskwiseError):
    """400/422: the request is wrong; retrying will not help."""


class AuthenticationError(AskwiseError):
    """401: missing or wrong API key."""


class NotFoundError(AskwiseError):
    """404: unknown model or route."""


class RequestTooLargeError(AskwiseError):
    """413: body over the gateway's limit."""


class RateLimitError(AskwiseError):
    """429: the gateway is at its admission limit; retried automatically."""


class ServerError(AskwiseError):
    """5xx: the gateway or its backend failed (502/504) or is unavailable (503)."""


class ConnectionFailed(AskwiseError):
    """No HTTP answer: refused, reset or timed out."""


_BY_STATUS = {400: BadRequestError, 401: AuthenticationError, 404: NotFoundError,
              413: RequestTooLargeError, 422: BadRequestError, 429: RateLimitError}


def error_from(status: int, body, retry_after: float | None = None) -> AskwiseError:
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        error = {"message": str(body)[:500] if body else f"HTTP {status}"}
    kind = _BY_STATUS.get(status, ServerError if status >= 500 else AskwiseError)
    return kind(status, str(error.get("message", "")), error.get("type"), error.get("param"),
                error.get("code"), retry_after)


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def _raise_for(response: httpx.Response, body=None) -> None:
    if response.status_code < 400:
        return
    if body is None:
        try:
            body = response.json()
        except ValueError:
            body = response.text
    raise error_from(response.status_code, body, _retry_after(response))


def _backoff(attempt: int, retry_after: float | None) -> float:
    if retry_after is not None:
        return min(retry_after, MAX_BACKOFF_S)
    return min(MAX_BACKOFF_S, 0.5 * 2 ** attempt) * (0.5 + random.random() / 2)


Message = MessageIn | dict | str


def build_request(messages: Message | list[Message], *, preset: str | None = None,
                  alpha: float | None = None, beta: float | None = None,
                  documents: list[str | dict | DocumentIn] | None = None, stream: bool = False,
                  **options) -> ChatRequest:
    """A validated `ChatRequest`. A bare string is one user message."""
    if isinstance(messages, (str, dict, MessageIn)):
        messages = [messages]
    turns = [MessageIn(role="user", content=m) if isinstance(m, str) else
             (m if isinstance(m, MessageIn) else MessageIn(**m)) for m in messages]
    costs = {k: v for k, v in (("alpha", alpha), ("beta", beta)) if v is not None}
    return ChatRequest(messages=turns, documents=list(documents or []), preset=preset,
                       costs=costs or None, stream=stream, **options)


@dataclass(frozen=True)
class StreamEvent:
    """One event of a streamed turn: "action" (action set), "delta" (text), "done" (response)."""

    type: str
    action: Action | None = None
    action_probabilities: ActionProbabilities | None = None  # with "action"
    decision: str | None = None  # with "action": "value" or "policy"
    expected: dict[str, ExpectedOut] | None = None  # with "action", when the value decision chose
    text: str = ""
    response: ChatResponse | None = None


def _event(payload: dict) -> StreamEvent:
    if "error" in payload:
        raise error_from(502, payload)  # in-band: the 200 header was already sent
    kind = payload.get("type")
    if kind == "action":
        probabilities = payload.get("action_probabilities")
        expected = payload.get("expected")
        return StreamEvent("action", action=Action(payload["action"]), action_probabilities=(
            ActionProbabilities.model_validate(probabilities) if probabilities else None),
            decision=payload.get("decision"),
            expected={a: ExpectedOut.model_validate(e) for a, e in expected.items()} if expected else None)
    if kind == "delta":
        return StreamEvent("delta", text=payload.get("text", ""))
    if kind == "done":
        return StreamEvent("done", response=ChatResponse.model_validate(payload["response"]))
    return StreamEvent(str(kind))


def _sse_payloads(lines) -> Iterator[dict | None]:
    for line in lines:
        if line.startswith("data:"):
            data = line[5:].strip()
            yield None if data == "[DONE]" else json.loads(data)


class _Base:
    def __init__(self, base_url: str, api_key: str | None, timeout_s: float, max_retries: int):
        self.base_url = base_url.rstrip("/")
        self.headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        self.timeout = httpx.Timeout(timeout_s, connect=min(10.0, timeout_s))
        self.max_retries = max_retries

    def _body(self, request: ChatRequest) -> dict:
        return request.model_dump(mode="json", exclude_none=True, exclude_defaults=False)


class AskwiseClient(_Base):
    """Blocking client. Use as a context manager, or call `close()`."""

    def __init__(self, base_url: str = "http://127.0.0.1:8000", *, api_key: str | None = None,
                 timeout_s: float = DEFAULT_TIMEOUT_S, max_retries: int = 3,
                 transport: httpx.BaseTransport | None = None):
        super().__init__(base_url, api_key, timeout_s, max_retries)
        self._http = httpx.Client(base_url=self.base_url, headers=self.headers, timeout=self.timeout,
                                  transport=transport)

    def __enter__(self) -> AskwiseClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _send(self, method: str, path: str, body: dict | None = None, stream: bool = False):
        for attempt in range(self.max_retries + 1):
            try:
                request = self._http.build_request(method, path, json=body)
                response = self._http.send(request, stream=stream)
            except httpx.TransportError as exc:
                if attempt < self.max_retries:
                    time.sleep(_backoff(attempt, None))
                    continue
                raise ConnectionFailed(0, f"{type(exc).__name__}: {exc}") from exc
            if response.status_code in RETRY_STATUSES and attempt < self.max_retries:
                response.close()
                time.sleep(_backoff(attempt, _retry_after(response)))
                continue
            if response.status_code >= 400:
                if stream:
                    response.read()
                    response.close()
                _raise_for(response)
            return response
        raise AssertionError("unreachable")

    def chat(self, messages: Message | list[Message], **options) -> ChatResponse:
        """One policy turn. Options: preset, alpha, beta, documents, model, temperature,
        top_p, max_tokens, seed."""
        request = build_request(messages, **options)
        return ChatResponse.model_validate(self._send("POST", "/v1/chat", self._body(request)).json())

    def stream(self, messages: Message | list[Message], **options) -> Iterator[StreamEvent]:
        """The turn as events; the last one ("done") carries the full `ChatResponse`."""
        request = build_request(messages, stream=True, **options)
        response = self._send("POST", "/v1/chat", self._body(request), stream=True)
        try:
            for payload in _sse_payloads(response.iter_lines()):
                if payload is None:
                    return
                yield _event(payload)
        finally:
            response.close()

    def presets(self) -> dict:
        return self._send("GET", "/v1/presets").json()

    def models(self) -> list[str]:
        return [m["id"] for m in self._send("GET", "/v1/models").json()["data"]]

    def ready(self) -> bool:
        try:
            return self._http.get("/readyz").status_code == 200
        except httpx.TransportError:
            return False

    def conversation(self, **options) -> Conversation:
        return Conversation(self, **options)


class AsyncAskwiseClient(_Base):
    """The same client for asyncio."""

    def __init__(self, base_url: str = "http://127.0.0.1:8000", *, api_key: str | None = None,
                 timeout_s: float = DEFAULT_TIMEOUT_S, max_retries: int = 3,
                 transport: httpx.AsyncBaseTransport | None = None):
        super().__init__(base_url, api_key, timeout_s, max_retries)
        self._http = httpx.AsyncClient(base_url=self.base_url, headers=self.headers,
                                       timeout=self.timeout, transport=transport)

    async def __aenter__(self) -> AsyncAskwiseClient:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _send(self, method: str, path: str, body: dict | None = None, stream: bool = False):
        for attempt in range(self.max_retries + 1):
            try:
                request = self._http.build_request(method, path, json=body)
                response = await self._http.send(request, stream=stream)
            except httpx.TransportError as exc:
                if attempt < self.max_retries:
                    await asyncio.sleep(_backoff(attempt, None))
                    continue
                raise ConnectionFailed(0, f"{type(exc).__name__}: {exc}") from exc
            if response.status_code in RETRY_STATUSES and attempt < self.max_retries:
                await response.aclose()
                await asyncio.sleep(_backoff(attempt, _retry_after(response)))
                continue
            if response.status_code >= 400:
                if stream:
                    await response.aread()
                    await response.aclose()
                _raise_for(response)
            return response
        raise AssertionError("unreachable")

    async def chat(self, messages: Message | list[Message], **options) -> ChatResponse:
        request = build_request(messages, **options)
        response = await self._send("POST", "/v1/chat", self._body(request))
        return ChatResponse.model_validate(response.json())

    async def stream(self, messages: Message | list[Message], **options) -> AsyncIterator[StreamEvent]:
        request = build_request(messages, stream=True, **options)
        response = await self._send("POST", "/v1/chat", self._body(request), stream=True)
        try:
            async for line in response.aiter_lines():
                for payload in _sse_payloads([line]):
                    if payload is None:
                        return
                    yield _event(payload)
        finally:
            await response.aclose()

    async def presets(self) -> dict:
        return (await self._send("GET", "/v1/presets")).json()

    def conversation(self, **options) -> AsyncConversation:
        return AsyncConversation(self, **options)


class _History:
    """The conversation as the gateway wants it back: assistant turns keep their action, so
    the policy sees its own format and counts its questions."""

    def __init__(self, **options):
        self.options = options
        self.messages: list[MessageIn] = []
        self.last: ChatResponse | None = None

    def _add_user(self, text: str) -> None:
        self.messages.append(MessageIn(role="user", content=text))

    def _add_reply(self, reply: ChatResponse) -> ChatResponse:
        self.messages.append(MessageIn(role="assistant", content=reply.message, action=reply.action))
        self.last = reply
        return reply

    @property
    def awaiting_answer(self) -> bool:
        """True after a clarifying question: the next `send` is the user's reply to it."""
        return self.last is not None and self.last.action is Action.CLARIFY

    def _option(self, index: int) -> str:
        """The last question's option number `index` (0-based), as the user's reply."""
        options = self.last.options if self.awaiting_answer else []
        if not 0 <= index < len(options):
            raise ValueError(f"no option {index}: the last reply offers {len(options)}")
        return options[index]

    def set_costs(self, *, preset: str | None = None, alpha: float | None = None,
                  beta: float | None = None) -> None:
        """Switch the costs for the turns to come (a preset clears explicit numbers)."""
        if preset is not None:
            self.options.pop("alpha", None)
            self.options.pop("beta", None)
            self.options["preset"] = preset
        for name, value in (("alpha", alpha), ("beta", beta)):
            if value is not None:
                self.options[name] = value

    def reset(self) -> None:
        self.messages, self.last = [], None


class Conversation(_History):
    """ask -> (the assistant clarifies -> the user answers ->) final answer.

        talk = client.conversation(preset="voice", documents=docs)
        reply = talk.send("Who won the world cup?")
        while reply.action is Action.CLARIFY:
            reply = talk.send(input(reply.message + " "))
    """

    def __init__(self, client: AskwiseClient, **options):
        super().__init__(**options)
        self.client = client

    def send(self, text: str, **overrides) -> ChatResponse:
        self._add_user(text)
        try:
            reply = self.client.chat(list(self.messages), **{**self.options, **overrides})
        except AskwiseError:
            self.messages.pop()
            raise
        return self._add_reply(reply)

    def pick(self, index: int, **overrides) -> ChatResponse:
        """Answer the last question with its option number `index` (0-based): a button press."""
        return self.send(self._option(index), **overrides)


class AsyncConversation(_History):
    def __init__(self, client: AsyncAskwiseClient, **options):
        super().__init__(**options)
        self.client = client

    async def send(self, text: str, **overrides) -> ChatResponse:
        self._add_user(text)
        try:
            reply = await self.client.chat(list(self.messages), **{**self.options, **overrides})
        except AskwiseError:
            self.messages.pop()
            raise
        return self._add_reply(reply)

    async def pick(self, index: int, **overrides) -> ChatResponse:
        """Answer the last question with its option number `index` (0-based): a button press."""
        return await self.send(self._option(index), **overrides)
