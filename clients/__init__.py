"""askwise.client: the Python SDK for the gateway and the `askwise chat` terminal client."""

from askwise.policy.actions import Action

from .sdk import (
    AskwiseClient,
    AskwiseError,
    AsyncAskwiseClient,
    AsyncConversation,
    AuthenticationError,
    BadRequestError,
    ConnectionFailed,
    Conversation,
    NotFoundError,
    RateLimitError,
    RequestTooLargeError,
    ServerError,
    StreamEvent,
    build_request,
)

__all__ = [
    "Action", "AskwiseClient", "AsyncAskwiseClient", "Conversation", "AsyncConversation", "StreamEvent",
    "build_request", "AskwiseError", "BadRequestError", "AuthenticationError", "NotFoundError",
    "RequestTooLargeError", "RateLimitError", "ServerError", "ConnectionFailed",
]
