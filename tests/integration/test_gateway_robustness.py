"""Robustness: arbitrary JSON never makes a 5xx, and a client that hangs up frees everything.

The gateway is routed to the misbehaving backend: its "untagged" model answers at once, so
the many valid bodies hypothesis finds cost milliseconds, not model time; its "slowstream"
model streams for 30 s and counts its open streams.
"""

import asyncio
import json
import time

import httpx
import pytest
from helpers import gateway, metric, wait_for
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from askwise.policy.engines.base import SamplingParams
from askwise.policy.engines.openai_engine import OpenAIEngine

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12)
messages = st.lists(st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "assistant", "system", "developer", "tool", "x"]),
     "content": st.text(max_size=50) | json_values},
    optional={"action": st.sampled_from(["answer", "clarify", "multi_answer", "bogus"])}), max_size=4)
bodies = st.fixed_dictionaries({"messages": messages}, optional={
    "model": st.sampled_from(["untagged", "nope"]) | json_values,
    "preset": st.sampled_from(["voice", "text", "nope"]) | json_values,
    "costs": st.fixed_dictionaries({}, optional={"alpha": json_values, "beta": json_values}) | json_values,
    "documents": st.lists(st.text(max_size=30) | st.fixed_dictionaries({"text": json_values}), max_size=3),
    "temperature": json_values, "top_p": json_values, "max_tokens": json_values, "seed": json_values,
    "n": json_values, "stop": json_values,
}) | json_values


@pytest.fixture(scope="module")
def fast(misbehaving_backend, logs):
    server = gateway(logs, "--backend", "openai", "--backend-url", misbehaving_backend.url + "/v1",
                     "--model", "untagged", "--max-in-flight", "1000")
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client
    server.stop()


@pytest.mark.parametrize("path", ["/v1/chat", "/v1/chat/completions"])
def test_no_input_makes_a_server_error(fast, path):
    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(bodies)
    def check(body):
        # json.dumps writes NaN and Infinity as JSON-ish literals, which clients do send.
        response = fast.post(path, content=json.dumps(body), headers={"content-type": "application/json"})
        assert response.status_code in (200, 400, 404), (body, response.text)
        if response.status_code != 200:
            error = response.json()["error"]
            assert set(error) == {"message", "type", "param", "code"} and error["message"]

    check()


def test_client_that_hangs_up_mid_stream_frees_its_slot_and_the_backend(fast, misbehaving_backend):
    def in_flight():
        return metric(str(fast.base_url).rstrip("/"), "askwise_in_flight_requests")

    def backend_streams():
        return httpx.get(misbehaving_backend.url + "/stats").json()["open_streams"]

    for path in ("/v1/chat", "/v1/chat/completions"):
        with fast.stream("POST", path, json={"model": "slowstream", "stream": True,
                                             "messages": [{"role": "user", "content": "sing"}]}) as r:
            lines = r.iter_lines()
            while not next(lines).startswith("data: "):
                pass
            assert in_flight() == 1 and backend_streams() == 1
        # Hung up: the gateway's slot and the backend's generation must both end.
        assert wait_for(lambda: in_flight() == 0), "the gateway kept the slot"
        assert wait_for(lambda: backend_streams() == 0), "the backend kept generating"


def test_requests_beyond_the_connection_pool_wait_their_turn(misbehaving_backend):
    """More requests in flight than the engine has connections (a burst, or a question's
    redraws fanning out) queue for a connection; the connect timeout bounds only making one.
    "echo" takes 0.2 s a reply, so with one connection the last of four waits 0.6 s, six
    times the connect timeout."""
    async def scenario():
        engine = OpenAIEngine(misbehaving_backend.url, default_model="echo", structured_outputs="off",
                              connect_timeout_s=0.1, max_connections=1)
        try:
            return await asyncio.gather(*(
                engine.complete([{"role": "user", "content": f"request {k}"}], SamplingParams(max_tokens=8))
                for k in range(4)))
        finally:
            await engine.aclose()
    replies = asyncio.run(scenario())
    assert [r.text for r in replies] == [f"#ANSWER You said: request {k}" for k in range(4)]


def test_a_connection_the_backend_closed_while_idle_is_not_reused(misbehaving_backend):
    """The backend (uvicorn, as vLLM's server) closes a keep-alive connection idle for 5 s.
    An engine whose event loop was too busy to see the close must not write its next
    request into that connection: it would fail with "Can not write request body"."""
    async def scenario():
        engine = OpenAIEngine(misbehaving_backend.url, default_model="untagged", structured_outputs="off")
        try:
            await engine.complete([{"role": "user", "content": "first"}], SamplingParams(max_tokens=8))
            time.sleep(5.5)  # blocks the loop on purpose: the server's close goes unseen
            return await engine.complete([{"role": "user", "content": "second"}], SamplingParams(max_tokens=8))
        finally:
            await engine.aclose()
    assert asyncio.run(scenario()).text
