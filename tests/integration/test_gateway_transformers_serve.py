"""The gateway routed to `transformers serve`, a second real OpenAI-compatible server.

It ignores vLLM's structured_outputs, so this is also the case of an unconstrained backend:
whatever the model writes, the gateway answers with a parsed action.
"""

import sys
from pathlib import Path

import httpx
import pytest
from helpers import ServerProcess, free_port, gateway


@pytest.fixture(scope="module")
def transformers_serve(base_checkpoint, logs):
    port = free_port()
    cli = Path(sys.executable).parent / "transformers"  # installed with transformers
    command = [str(cli), "serve", str(base_checkpoint), "--host", "127.0.0.1", "--port", str(port)]
    server = ServerProcess(command, port, logs / "transformers-serve.log", ready_path="/health",
                           env={"HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}).start(180)
    yield server
    server.stop()


def test_gateway_answers_through_transformers_serve(transformers_serve, logs):
    routed = gateway(logs, "--backend", "openai", "--backend-url", transformers_serve.url + "/v1")
    try:
        response = httpx.post(routed.url + "/v1/chat", timeout=120, json={
            "preset": "voice", "max_tokens": 24,
            "messages": [{"role": "user", "content": "Who won the world cup?"}]})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["action"] in {"answer", "multi_answer", "clarify"} and body["message"]
        assert body["usage"]["completion_tokens"] > 0
        # from its token logprobs where it sends them; null, not an error, where it does not
        probabilities = body["action_probabilities"]
        assert probabilities is None or sum(probabilities.values()) == pytest.approx(1.0)
    finally:
        routed.stop()


def test_streaming_through_transformers_serve(transformers_serve, logs):
    routed = gateway(logs, "--backend", "openai", "--backend-url", transformers_serve.url + "/v1")
    try:
        with httpx.stream("POST", routed.url + "/v1/chat", timeout=120, json={
                "stream": True, "max_tokens": 16,
                "messages": [{"role": "user", "content": "Who won the world cup?"}]}) as r:
            lines = [line for line in r.iter_lines() if line.startswith("data: ")]
        assert r.status_code == 200 and lines[-1] == "data: [DONE]"
        assert '"type":"done"' in lines[-2]
    finally:
        routed.stop()
