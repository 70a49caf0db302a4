"""Engine for any OpenAI-compatible server: vLLM first, also `transformers serve`, llama.cpp.

One pooled `aiohttp.ClientSession` (connection reuse), explicit connect/read timeouts plus a
total deadline per request, SSE streaming, and adapter selection by model name (vLLM serves
each LoRA adapter under its own name: `--lora-modules name=path`). aiohttp rather than httpx
because this client sits on every request's path: with an instant backend, the gateway spent
two thirds of its CPU per request inside httpx/httpcore/anyio (py-spy), and aiohttp does the
same work at about two thirds of the added time per request (benchmarks/gateway_cost.py).

Constraints: the request carries vLLM's `structured_outputs: {"regex": ...}` (the old
`guided_json` family is silently ignored by current vLLM, so it is never sent). Servers
without that field either ignore it (llama.cpp) or reject it (`transformers serve`: 422); with
`structured_outputs="auto"` a rejection turns the field off for that backend and the request
is sent again without it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
import time
from collections.abc import AsyncIterator
from typing import Literal

import aiohttp

from .base import (
    ChatMessages,
    Completion,
    Engine,
    EngineBadResponse,
    EngineError,
    EngineRejected,
    EngineTimeout,
    EngineUnavailable,
    EngineUnreachable,
    SamplingParams,
    StreamChunk,
    UnknownModel,
)
from .prefix_choice import PrefixChoice

MODELS_CACHE_S = 10.0
# How long an idle pooled connection is reused. Below the 5 s after which vLLM's and
# uvicorn's servers close an idle keep-alive connection (aiohttp's own default is 15 s):
# a request written into a connection the server has just closed fails ("Can not write
# request body", server disconnected), and a POST is not retried.
KEEPALIVE_S = 4.0
# Candidates per token asked for with prefix probabilities: the tags' tokens are among the
# few the policy considers at the deciding step, and every candidate costs vLLM work for
# every token of the reply.
TOP_LOGPROBS = 5

log = logging.getLogger(__name__)


class OpenAIEngine(Engine):
    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        default_model: str | None = None,
        structured_outputs: Literal["auto", "on", "off"] = "auto",
        connect_timeout_s: float = 5.0,
        timeout_s: float = 120.0,
        max_connections: int = 64,
        send_seeds: bool = True,
    ):
        base_url = base_url.rstrip("/")
        self.base_url = base_url if base_url.endswith("/v1") else base_url + "/v1"
        self.default_model = default_model
        self.structured_outputs = structured_outputs != "off"
        self._fallback_allowed = structured_outputs == "auto"
        self.timeout_s = timeout_s
        self.send_seeds = send_seeds
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        # `sock_connect`, not `connect`: aiohttp's `connect` also counts the wait for a free
        # pooled connection, so more requests in flight than `max_connections` (a burst, or
        # question redraws fanning out) would fail after a few seconds instead of queueing;
        # that wait is bounded by `timeout_s` like the rest of the exchange.
        self._timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout_s,
                                              sock_read=timeout_s)
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None  # made in the loop that uses it
        self._models: list[str] = []
        self._models_at = -MODELS_CACHE_S

    # ------------------------------------------------------------------ models and health

    async def list_models(self) -> list[str]:
        if time.monotonic() - self._models_at < MODELS_CACHE_S and self._models:
            return self._ordered(self._models)
        data = await self._get_json("/models")
        try:
            models = [entry["id"] for entry in data["data"]]
        except (KeyError, TypeError) as exc:
            raise EngineBadResponse(f"backend /v1/models answered without model ids: {exc}") from None
        if not models:
            raise EngineUnavailable("backend serves no models", retry_after=5)
        self._models, self._models_at = models, time.monotonic()
        return self._ordered(models)

    def _ordered(self, models: list[str]) -> list[str]:
        if self.default_model in models:
            return [self.default_model] + [m for m in models if m != self.default_model]
        return list(models)

    async def check_ready(self) -> None:
        self._models_at = -MODELS_CACHE_S  # readiness asks the backend afresh
        models = await self.list_models()
        if self.default_model and self.default_model not in models:
            raise EngineUnavailable(
                f"backend does not serve the configured model {self.default_model!r}; it serves {models}")

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # ------------------------------------------------------------------ generation

    async def _resolve_model(self, model: str | None) -> str:
        models = await self.list_models()
        if model is None:
            return models[0]
        if model not in models:
            self._models_at = -MODELS_CACHE_S  # an adapter may have been loaded since
            models = await self.list_models()
            if model not in models:
                raise UnknownModel(f"model {model!r} is not served; available: {', '.join(models)}",
                                   param="model")
        return model

    def request_body(self, messages: ChatMessages, params: SamplingParams, model: str,
                     stream: bool) -> dict:
        """The JSON body sent to the backend for one request (benchmarks replay it directly)."""
        body = {
            "model": model,
            "messages": messages,
            "max_completion_tokens": params.max_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "stream": stream,
        }
        if params.seed is not None and self.send_seeds:
            body["seed"] = params.seed
        if params.stop:
            body["stop"] = list(params.stop)
        if stream:
            body["stream_options"] = {"include_usage": True}
        regex = params.regex
        if regex is None and params.allowed_prefixes:
            regex = "(" + "|".join(re.escape(p) for p in params.allowed_prefixes) + r")[\s\S]*"
        if self.structured_outputs and regex:
            body["structured_outputs"] = {"regex": regex}
        if params.prefix_probabilities and len(params.reported_prefixes) > 1:
            body["logprobs"], body["top_logprobs"] = True, TOP_LOGPROBS
        return body

    def _drops_structured_outputs(self, exc: EngineRejected, body: dict) -> bool:
        """Whether to retry without the constraint: only a backend that refused that field."""
        if "structured_outputs" not in body or not self._fallback_allowed:
            return False
        if "structured_outputs" not in exc.message and "structured" not in (exc.param or ""):
            return False
        log.warning("backend %s does not accept structured_outputs; sending requests "
                    "unconstrained from now on", self.base_url)
        self.structured_outputs = False
        return True

    async def complete(self, messages: ChatMessages, params: SamplingParams,
                       model: str | None = None) -> Completion:
        body = self.request_body(messages, params, await self._resolve_model(model), stream=False)
        async with await self._send(body) as response:
            data = _load_json(await _read(response))
        try:
            choice = data["choices"][0]
            usage = data.get("usage") or {}
            picked = _PrefixLogprobs(params)
            picked.feed(choice.get("logprobs"))
            return Completion(
                text=choice["message"].get("content") or "",
                prompt_tokens=int(usage.get("prompt_tokens", 0)),
                completion_tokens=int(usage.get("completion_tokens", 0)),
                finish_reason=choice.get("finish_reason") or "stop",
                prefix_probabilities=picked.result,
            )
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
            raise EngineBadResponse(f"backend answered an unexpected completion: {exc!r}") from None

    async def stream(self, messages: ChatMessages, params: SamplingParams,
                     model: str | None = None) -> AsyncIterator[StreamChunk]:
        body = self.request_body(messages, params, await self._resolve_model(model), stream=True)
        text, usage, finish = [], {}, "stop"
        picked = _PrefixLogprobs(params)
        deadline = time.monotonic() + self.timeout_s
        async with await self._send(body) as response:
            lines = aiter(response.content)
            while True:
                try:
                    raw = await asyncio.wait_for(anext(lines), max(0.0, deadline - time.monotonic()))
                except StopAsyncIteration:
                    break
                except TimeoutError:
                    raise EngineTimeout(f"backend stream exceeded {self.timeout_s:g} s") from None
                except aiohttp.ClientError as exc:
                    raise _transport_error(exc) from None
                except ValueError:  # aiohttp's "Line is too long" (over 64 KiB)
                    raise EngineBadResponse("backend sent an over-long stream line") from None
                line = raw.decode("utf-8", errors="replace").strip()
                if not line.startswith("data:"):
                    continue
                payload = line[5:].strip()
                if payload == "[DONE]":
                    break
                event = _load_json(payload)
                if "error" in event:
                    raise _error_from_body(500, event)
                if event.get("usage"):
                    usage = event["usage"]
                for choice in event.get("choices") or ():
                    delta = (choice.get("delta") or {}).get("content") or ""
                    finish = choice.get("finish_reason") or finish
                    picked.feed(choice.get("logprobs"))
                    if delta:
                        text.append(delta)
                        yield StreamChunk(delta, prefix_probabilities=picked.result)
        yield StreamChunk("", Completion(
            text="".join(text),
            prompt_tokens=int(usage.get("prompt_tokens", 0)),
            completion_tokens=int(usage.get("completion_tokens", 0)),
            finish_reason=finish,
            prefix_probabilities=picked.result,
        ), prefix_probabilities=picked.result)

    async def classify(self, messages: ChatMessages, model: str | None = None) -> list[float]:
        """vLLM's `/classify` on `messages`, rendered by the chat template without a generation
        prompt: the classification head's raw outputs (`use_activation: false`, no softmax).
        The server is a pooling one (`--runner pooling`) serving a classification model."""
        body = {"model": await self._resolve_model(model), "messages": messages,
                "add_generation_prompt": False, "use_activation": False}
        async with self._request("POST", "/classify", body, root=True) as response:
            data = _load_json(await _read(response))
        try:
            outputs = [float(x) for x in data["data"][0]["probs"]]
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise EngineBadResponse(f"backend answered an unexpected classification: {exc!r}") from None
        if not all(math.isfinite(x) for x in outputs):
            raise EngineBadResponse("backend answered a classification that is not finite")
        return outputs

    # ------------------------------------------------------------------ HTTP plumbing

    async def _send(self, body: dict) -> _Exchange:
        """An opened chat request; once more without structured_outputs if it was refused."""
        exchange = self._request("POST", "/chat/completions", body)
        try:
            await exchange.open()
        except EngineRejected as exc:
            if not self._drops_structured_outputs(exc, body):
                raise
            body.pop("structured_outputs")
            exchange = self._request("POST", "/chat/completions", body)
            await exchange.open()
        return exchange

    async def _get_json(self, path: str) -> dict:
        async with self._request("GET", path) as response:
            return _load_json(await _read(response))

    def _request(self, method: str, path: str, body: dict | None = None, root: bool = False) -> _Exchange:
        """`path` under the API's /v1, or (`root`) under the server's root, where vLLM serves
        its pooling endpoints."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                headers=self._headers, timeout=self._timeout,
                connector=aiohttp.TCPConnector(limit=self._max_connections, keepalive_timeout=KEEPALIVE_S),
                json_serialize=_dumps)
        base = self.base_url.removesuffix("/v1") if root else self.base_url
        return _Exchange(self._session, method, base + path, body, self.timeout_s)


class _Exchange:
    """One request as an async context manager: transport errors and HTTP errors mapped to
    engine errors, and a total deadline on the response headers. `open` may come first."""

    def __init__(self, session: aiohttp.ClientSession, method: str, url: str, body: dict | None,
                 timeout_s: float):
        self._session, self._method, self._url, self._body = session, method, url, body
        self._timeout_s = timeout_s
        self._response: aiohttp.ClientResponse | None = None

    async def open(self) -> aiohttp.ClientResponse:
        try:
            response = await asyncio.wait_for(
                self._session.request(self._method, self._url, json=self._body), self._timeout_s)
        except aiohttp.ClientError as exc:
            # Before TimeoutError: aiohttp's own timeouts (a connect that never completes) are
            # both, and say more than the overall deadline would.
            raise _transport_error(exc) from None
        except TimeoutError:
            raise EngineTimeout(f"backend did not answer within {self._timeout_s:g} s") from None
        if response.status >= 400:
            try:
                body = _load_json(await _read(response))
            except EngineError:
                body = {}
            finally:
                response.release()
            raise _error_from_body(response.status, body, response.headers.get("retry-after"))
        self._response = response
        return response

    async def __aenter__(self) -> aiohttp.ClientResponse:
        return self._response if self._response is not None else await self.open()

    async def __aexit__(self, exc_type, exc, tb):
        if self._response is not None:
            # A response read to its end goes back to the pool; one abandoned mid-way (the
            # client hung up, the caller stopped early) is closed, which makes vLLM abort it.
            if exc_type is None and self._response.content.at_eof():
                self._response.release()
            else:
                self._response.close()


class _PrefixLogprobs:
    """`PrefixChoice` fed from the OpenAI `logprobs` of a reply, as they arrive. A backend that
    sends none, or sends them malformed, leaves the result None: never an error."""

    def __init__(self, params: SamplingParams):
        wanted = params.prefix_probabilities and params.reported_prefixes
        self.choice = PrefixChoice(params.reported_prefixes) if wanted else None
        self.text = ""

    @property
    def result(self) -> dict[str, float] | None:
        return self.choice.result if self.choice is not None and self.choice.done else None

    def feed(self, logprobs) -> None:
        if self.choice is None or self.choice.done:
            return
        try:
            for position in (logprobs or {}).get("content") or ():
                candidates = [(str(c["token"]), math.exp(float(c["logprob"])))
                              for c in position.get("top_logprobs") or ()]
                taken = (str(position["token"]), math.exp(float(position["logprob"])))
                self.choice.step(self.text, candidates, taken)
                self.text += taken[0]
                if self.choice.done:
                    return
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError):
            self.choice = None


async def _read(response: aiohttp.ClientResponse) -> bytes:
    try:
        return await response.read()
    except TimeoutError:
        raise EngineTimeout("backend stopped sending its reply") from None
    except aiohttp.ClientError as exc:
        raise _transport_error(exc) from None


def _dumps(data) -> str:
    return json.dumps(data, separators=(",", ":"))


def _load_json(raw: bytes | str) -> dict:
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise EngineBadResponse("backend answered with something that is not JSON") from None
    if not isinstance(data, dict):
        raise EngineBadResponse("backend answered with JSON that is not an object")
    return data


def _transport_error(exc: aiohttp.ClientError):
    if isinstance(exc, aiohttp.ServerTimeoutError):
        return EngineTimeout(f"backend timed out: {type(exc).__name__}")
    if isinstance(exc, (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError)):
        # Refused, reset, or closed before the reply was complete: the server is gone.
        return EngineUnreachable(f"backend unreachable: {str(exc) or type(exc).__name__}",
                                 retry_after=5)
    return EngineBadResponse(f"backend transport error: {str(exc) or type(exc).__name__}")


def _error_from_body(status: int, body: dict, retry_after: str | None = None):
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        message, param = str(error.get("message") or "backend error"), error.get("param")
    else:
        # FastAPI-style servers (transformers serve) put the reason in "detail".
        reason = error or body.get("message") or body.get("detail")
        message, param = str(reason or f"backend answered HTTP {status}"), None
    param = param if isinstance(param, str) else None
    try:
        wait = float(retry_after) if retry_after else None
    except ValueError:
        wait = None
    if status == 404 and (param == "model" or "model" in message.lower()):
        return UnknownModel(message, param="model")
    if status in (400, 413, 422):
        return EngineRejected(f"backend rejected the request: {message}", param=param)
    if status in (429, 503):
        return EngineUnavailable(f"backend busy: {message}", retry_after=wait or 1)
    if status == 504:
        return EngineTimeout(f"backend timed out: {message}")
    return EngineBadResponse(f"backend error (HTTP {status}): {message}")
