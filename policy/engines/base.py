"""One interface for every engine that runs a policy checkpoint: chat in, text out.

Engines know nothing of actions or costs: the policy renders the prompt and parses the
reply. Two engines implement this interface: `TransformersEngine` (in-process, CPU or GPU)
and `OpenAIEngine` (any OpenAI-compatible server; vLLM first).
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass

ChatMessages = list[dict[str, str]]


@dataclass(frozen=True)
class StateDecision:
    """Prefixes chosen from the prompt's own state, by an engine that runs the model itself.

    The engine reads the last hidden state (after the final norm) at the last token of the
    first `prefix_messages` messages, as the chat template renders them without a generation
    prompt, during the prefill it runs anyway; calls `choose(state)` (a 1-D tensor) before the
    first reply token; and from then on allows only the prefixes it returns. What `choose`
    returns beside them is handed back to the caller (`StreamChunk.decision`,
    `Completion.decision`) before any reply text."""

    prefix_messages: int
    choose: Callable[[object], tuple[tuple[str, ...], object]]


@dataclass(frozen=True)
class SamplingParams:
    """How to decode one reply.

    `allowed_prefixes` and `regex` constrain the output. Each engine enforces what it can:
    the in-process engine forces the reply to start with one of `allowed_prefixes`; servers
    with structured outputs (vLLM) take `regex`, or the prefixes turned into one. `stop`
    strings end the reply, and are not part of it (OpenAI semantics). With
    `prefix_probabilities`, the completion says how likely the model found each allowed
    prefix (or each of `choice_prefixes`, when given: a reply forced to one prefix still
    reports the model's own preference among several) where the reply picked one
    (`prefix_choice.py`). `decision`: see `StateDecision` (in-process engines only).
    """

    max_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    allowed_prefixes: tuple[str, ...] = ()
    regex: str | None = None
    stop: tuple[str, ...] = ()
    prefix_probabilities: bool = False
    choice_prefixes: tuple[str, ...] = ()
    decision: StateDecision | None = None

    @property
    def reported_prefixes(self) -> tuple[str, ...]:
        """The prefixes whose probabilities `prefix_probabilities` reports."""
        return self.choice_prefixes or self.allowed_prefixes


@dataclass(frozen=True)
class Completion:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # "stop" or "length"
    # Each allowed prefix's probability where the reply picked one, when asked for and known.
    prefix_probabilities: dict[str, float] | None = None
    # What `SamplingParams.decision` chose, when it was given.
    decision: object = None


@dataclass(frozen=True)
class StreamChunk:
    """A piece of a streamed reply; the last chunk carries the whole `completion`.
    `prefix_probabilities` is on every chunk from the one where the prefix was picked;
    `decision` on one chunk of its own, before any text, when `SamplingParams.decision`
    chose."""

    text: str
    completion: Completion | None = None
    prefix_probabilities: dict[str, float] | None = None
    decision: object = None


class EngineError(Exception):
    """Base class; `status` is the HTTP status a gateway should answer with."""

    status = 502
    code = "backend_error"

    def __init__(self, message: str, *, param: str | None = None, retry_after: float | None = None):
        super().__init__(message)
        self.message = message
        self.param = param
        self.retry_after = retry_after


class EngineUnavailable(EngineError):
    """Not loaded yet, unreachable, or overloaded: try again later."""

    status = 503
    code = "backend_unavailable"


class EngineUnreachable(EngineUnavailable):
    """The backend could not be reached, or dropped the connection before answering."""


class EngineTimeout(EngineError):
    status = 504
    code = "backend_timeout"


class EngineBadResponse(EngineError):
    """The backend answered, but not with something usable."""

    status = 502
    code = "backend_error"


class EngineRejected(EngineError):
    """The backend refused the request itself (too long a prompt, say): the caller's fault."""

    status = 400
    code = "invalid_request"


class UnknownModel(EngineError):
    status = 404
    code = "model_not_found"


class Engine(ABC):
    """A policy checkpoint behind `complete`, `complete_batch` and `stream`."""

    # Whether `SamplingParams.decision` is run (in-process engines, which see the states).
    runs_decisions = False

    @abstractmethod
    async def complete(self, messages: ChatMessages, params: SamplingParams,
                       model: str | None = None) -> Completion:
        """One reply for one conversation."""

    @abstractmethod
    def stream(self, messages: ChatMessages, params: SamplingParams,
               model: str | None = None) -> AsyncIterator[StreamChunk]:
        """The reply as it is generated; the last chunk holds the full `Completion`."""

    async def complete_batch(self, conversations: Sequence[ChatMessages], params: SamplingParams,
                             model: str | None = None) -> list[Completion]:
        """Many replies at once. Engines batch concurrent requests, so this submits them all."""
        return list(await asyncio.gather(*(self.complete(m, params, model) for m in conversations)))

    @abstractmethod
    async def list_models(self) -> list[str]:
        """Model names this engine answers to; the first is the default."""

    @abstractmethod
    async def check_ready(self) -> None:
        """Return when requests can be served; raise `EngineUnavailable` otherwise."""

    async def aclose(self) -> None:
        """Release threads, connections and memory."""
