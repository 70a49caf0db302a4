"""Engines run a checkpoint: chat messages in, text out. Heavy imports stay in their modules."""

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
    StateDecision,
    StreamChunk,
    UnknownModel,
)

__all__ = [
    "ChatMessages", "Completion", "Engine", "EngineBadResponse", "EngineError", "EngineRejected",
    "EngineTimeout", "EngineUnavailable", "EngineUnreachable", "SamplingParams", "StateDecision",
    "StreamChunk", "UnknownModel",
]
