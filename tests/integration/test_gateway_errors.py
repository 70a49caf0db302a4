"""Every bad input is a 4xx in the OpenAI error shape; backend trouble is 502/503/504."""

import json
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest
from helpers import free_port, gateway

USER = [{"role": "user", "content": "Who won?"}]


def assert_error(response, status, param=None):
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"]
    if param is not None:
        assert error["param"] == param, error
    return error


BAD_CHAT_BODIES = [
    ({"messages": USER, "costs": {"alpha": -0.1}}, "costs.alpha"),
    ({"messages": USER, "costs": {"beta": "0.1"}}, "costs.beta"),
    ({"messages": USER, "costs": {"gamma": 1}}, "costs.gamma"),
    ({"messages": USER, "preset": "podcast"}, "preset"),
    ({"messages": []}, "messages"),
    ({"messages": [{"role": "user"}]}, "messages.0.content"),
    ({"messages": [{"role": "robot", "content": "x"}]}, "messages.0.role"),
    ({"messages": [{"role": "user", "content": 42}]}, "messages.0.content"),
    ({"messages": [{"role": "user", "content": "   "}]}, "messages"),
    ({"messages": USER + [{"role": "assistant", "content": "Paris"}]}, "messages"),
    ({"messages": USER, "temperature": 5}, "temperature"),
    ({"messages": USER, "max_tokens": 0}, "max_tokens"),
    ({"messages": USER, "max_tokens": 100000}, "max_tokens"),
    ({"messages": USER, "documents": [{"txt": "x"}]}, None),
    ({"messages": USER * 100}, "messages"),
    ({"messages": [{"role": "user", "content": "x" * 9000}]}, "messages.0.content"),
    ({"message": USER}, None),
]


@pytest.mark.parametrize("body, param", BAD_CHAT_BODIES)
def test_bad_native_requests_are_400(embedded, body, param):
    assert_error(httpx.post(embedded.url + "/v1/chat", json=body), 400, param)


def test_non_finite_costs_and_malformed_json_are_400(embedded):
    cost = '{"messages": [{"role": "user", "content": "hi"}], "costs": {"alpha": %s}}'
    for raw in (cost % "NaN", cost % "1e999", cost % "-Infinity", "{not json", "", "[]", "null"):
        r = httpx.post(embedded.url + "/v1/chat", content=raw, headers={"content-type": "application/json"})
        assert_error(r, 400)
        assert r.headers["x-should-retry"] == "false"


def test_unknown_model_is_404(embedded):
    assert_error(httpx.post(embedded.url + "/v1/chat", json={"messages": USER, "model": "gpt-9"}),
                 404, "model")


def test_oversize_body_is_413(embedded):
    big = {"messages": [{"role": "user", "content": "x" * 2_000_000}]}
    assert_error(httpx.post(embedded.url + "/v1/chat", json=big), 413)
    chunked = httpx.post(embedded.url + "/v1/chat", content=iter([b"{" + b" " * 1_100_000]),
                         headers={"content-type": "application/json"})
    assert_error(chunked, 413)


def test_unknown_route_and_method_keep_the_shape(embedded):
    assert_error(httpx.get(embedded.url + "/v1/nothing"), 404)
    assert_error(httpx.get(embedded.url + "/v1/chat"), 405)


@pytest.mark.parametrize("extra, param", [
    ({"n": 2}, "n"), ({"stop": ["\n"]}, "stop"), ({"tools": [{"type": "function"}]}, "tools"),
    ({"response_format": {"type": "json_object"}}, "response_format"),
    ({"costs": {"alpha": -1}}, "costs.alpha"), ({"preset": "nope"}, "preset"),
    ({"messages": [{"role": "tool", "content": "x"}]}, "messages.0.role"),
])
def test_bad_openai_requests_are_400(embedded, extra, param):
    body = {"model": "askwise-default", "messages": USER, **extra}
    assert_error(httpx.post(embedded.url + "/v1/chat/completions", json=body), 400, param)


def test_openai_client_sees_typed_errors(embedded):
    client = openai.OpenAI(base_url=embedded.url + "/v1", api_key="unused", max_retries=0)
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="askwise-default", messages=USER,
                                       extra_body={"costs": {"alpha": -1}})
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="gpt-9", messages=USER)


@pytest.fixture(scope="module")
def dead_backend_gateway(logs):
    server = gateway(logs, "--backend", "openai", "--backend-url", f"http://127.0.0.1:{free_port()}/v1",
                     "--backend-timeout-s", "3", ready_path="/healthz",
                     env={"ASKWISE_API_KEYS": "s3cret"})
    yield server
    server.stop()


def test_api_key_is_required_when_set(dead_backend_gateway):
    url = dead_backend_gateway.url
    assert_error(httpx.post(url + "/v1/chat", json={"messages": USER}), 401)
    assert_error(httpx.post(url + "/v1/chat", json={"messages": USER},
                            headers={"Authorization": "Bearer wrong"}), 401)
    assert httpx.get(url + "/healthz").status_code == 200  # probes need no key


def test_unreachable_backend_is_503_and_not_ready(dead_backend_gateway):
    url, auth = dead_backend_gateway.url, {"Authorization": "Bearer s3cret"}
    error = assert_error(httpx.post(url + "/v1/chat", json={"messages": USER}, headers=auth), 503)
    assert error["type"] == "service_unavailable"
    ready = httpx.get(url + "/readyz", headers=auth)
    assert ready.status_code == 503 and "Retry-After" in ready.headers
    # Validation still comes first: bad input is the client's problem even when we are down.
    assert_error(httpx.post(url + "/v1/chat", json={"messages": USER, "costs": {"alpha": -1}},
                            headers=auth), 400)


@pytest.fixture(scope="module")
def flaky(misbehaving_backend, logs):
    server = gateway(logs, "--backend", "openai", "--backend-url", misbehaving_backend.url + "/v1",
                     "--backend-timeout-s", "2", "--max-in-flight", "2", "--max-queued", "0")
    yield server
    server.stop()


def chat(server, model, **extra):
    return httpx.post(server.url + "/v1/chat", json={"messages": USER, "model": model, **extra},
                      timeout=30)


def test_backend_garbage_is_502(flaky):
    assert_error(chat(flaky, "garbage"), 502)
    assert_error(chat(flaky, "crash"), 502)


def test_backend_timeout_is_504(flaky):
    assert_error(chat(flaky, "slow"), 504)


def test_backend_overload_is_503_with_retry_after(flaky):
    response = chat(flaky, "overloaded")
    assert_error(response, 503)
    assert response.headers["Retry-After"] == "7"


def test_untagged_model_output_is_parsed_defensively(flaky):
    body = chat(flaky, "untagged").json()
    assert body["action"] == "answer" and body["well_formed"] is False
    assert body["message"].startswith("Paris")


def test_error_after_stream_start_is_sent_in_band(flaky):
    with httpx.stream("POST", flaky.url + "/v1/chat/completions", timeout=30,
                      json={"model": "midstream-error", "messages": USER, "stream": True}) as r:
        assert r.status_code == 200
        lines = [json.loads(line[6:]) for line in r.iter_lines() if line.startswith("data: {")]
    assert lines[-1]["error"]["type"] == "backend_error"
    client = openai.OpenAI(base_url=flaky.url + "/v1", api_key="x", max_retries=0)
    with pytest.raises(openai.APIError):
        list(client.chat.completions.create(model="midstream-error", messages=USER, stream=True))


def test_admission_control_answers_429_with_retry_after(flaky):
    with ThreadPoolExecutor(6) as pool:
        responses = list(pool.map(lambda _: chat(flaky, "wait"), range(6)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(200) >= 2 and 429 in statuses, statuses
    busy = next(r for r in responses if r.status_code == 429)
    assert busy.headers["Retry-After"] and busy.json()["error"]["type"] == "rate_limit_error"
    # Slots come back: the server serves again afterwards.
    assert chat(flaky, "untagged").status_code == 200
