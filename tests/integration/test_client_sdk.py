"""askwise.client against real gateways on 127.0.0.1: the embedded policy for real replies,
and a gateway routed to the scripted backend for a deterministic clarification round."""

import asyncio
import threading
import time

import pydantic
import pytest
from helpers import free_port, metric

from askwise.client import (
    AskwiseClient,
    AsyncAskwiseClient,
    BadRequestError,
    ConnectionFailed,
    RateLimitError,
)
from askwise.policy import Action
from askwise.server.protocol import ChatResponse

DOCS = ["Hamlet was written by William Shakespeare around 1600."]


def test_chat_returns_the_servers_typed_response(embedded):
    with AskwiseClient(embedded.url) as client:
        reply = client.chat("Who wrote Hamlet?", preset="voice", documents=DOCS, max_tokens=24)
    assert isinstance(reply, ChatResponse) and isinstance(reply.action, Action)
    assert (reply.costs.preset, reply.costs.alpha, reply.costs.beta) == ("voice", 0.05, 0.02)
    assert reply.usage.completion_tokens > 0 and reply.prompt_format.startswith("askwise-prompt")


def test_explicit_costs_override_the_preset(embedded):
    with AskwiseClient(embedded.url) as client:
        reply = client.chat("Who wrote Hamlet?", preset="text", beta=0.05, max_tokens=8)
    assert (reply.costs.alpha, reply.costs.beta) == (0.3, 0.05)


def test_stream_gives_the_action_first_and_text_that_adds_up(embedded):
    with AskwiseClient(embedded.url) as client:
        events = list(client.stream("Who wrote Hamlet?", documents=DOCS, max_tokens=24))
    assert events[0].type == "action" and events[-1].type == "done"
    text = "".join(e.text for e in events if e.type == "delta")
    assert text == events[-1].response.message
    assert events[0].action is events[-1].response.action


def test_async_client_chats_and_streams(embedded):
    async def run():
        async with AsyncAskwiseClient(embedded.url) as client:
            reply = await client.chat("Who wrote Hamlet?", preset="text", max_tokens=12)
            events = [e async for e in client.stream("Who wrote Hamlet?", max_tokens=12)]
            return reply, events

    reply, events = asyncio.run(run())
    assert reply.costs.preset == "text"
    assert events[-1].type == "done" and events[-1].response.costs.preset == "default"


def test_server_errors_become_typed_exceptions_with_the_openai_body(embedded):
    with AskwiseClient(embedded.url) as client:
        with pytest.raises(BadRequestError) as caught:
            client.chat("hi", preset="no-such-preset")
    assert caught.value.status == 400 and "no-such-preset" in caught.value.message
    assert caught.value.type == "invalid_request_error"


def test_requests_are_validated_by_the_servers_schema_before_sending():
    with AskwiseClient("http://127.0.0.1:9") as client:  # nothing listens there: never reached
        with pytest.raises(pydantic.ValidationError):
            client.chat("hi", alpha=-1.0)


def test_unreachable_gateway_is_a_connection_error():
    with AskwiseClient(f"http://127.0.0.1:{free_port()}", max_retries=1, timeout_s=2) as client:
        with pytest.raises(ConnectionFailed):
            client.chat("hi")


def test_429_is_retried_after_retry_after(scripted):
    # The gateway admits one request at a time; "wait" holds the slot for 1.5 s.
    holder = threading.Thread(target=lambda: AskwiseClient(scripted.url).chat("hi", model="wait"))
    holder.start()
    try:
        deadline = time.monotonic() + 30
        while metric(scripted.url, "askwise_in_flight_requests") < 1:  # until the holder has the slot
            assert time.monotonic() < deadline, "the holding request never arrived"
            time.sleep(0.02)
        with AskwiseClient(scripted.url, max_retries=0) as impatient:
            with pytest.raises(RateLimitError) as caught:
                impatient.chat("hi", model="clarifier")
        assert caught.value.retry_after == 1 and caught.value.code == "server_busy"
        with AskwiseClient(scripted.url, max_retries=5) as patient:  # waits out Retry-After
            assert patient.chat("hi", model="clarifier").action is Action.CLARIFY
    finally:
        holder.join(30)


def test_conversation_carries_the_history_through_a_clarification(scripted):
    with AskwiseClient(scripted.url) as client:
        talk = client.conversation(model="clarifier", preset="voice")
        first = talk.send("Who won the world cup?")
        assert first.action is Action.CLARIFY and talk.awaiting_answer
        final = talk.send("2018")
        assert final.action is Action.ANSWER and final.message == "In 2018, France won."
        assert not talk.awaiting_answer
        assert [(m.role, m.action) for m in talk.messages] == [
            ("user", None), ("assistant", Action.CLARIFY), ("user", None), ("assistant", Action.ANSWER)]
        assert final.costs.preset == "voice"
