"""The gateway under load, hang-ups, shutdown and auth, against the scripted backend.

Its "wait" model takes 1.5 s, "hold" generates for 30 s unless the client hangs up (as vLLM
does), and "echo" answers with the request's own words after 0.2 s.
"""

import signal
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from helpers import gateway, metric, wait_for

USER = [{"role": "user", "content": "Who won the world cup?"}]
KEYS = ("sk-askwise-test-7Hq2", "sk-askwise-test-Zp9v")


def routed(backend, logs, *flags, env=None, ready_path="/readyz"):
    return gateway(logs, "--backend", "openai", "--backend-url", backend.url + "/v1", *flags,
                   env=env, ready_path=ready_path)


def chat(server, model, content="Who won the world cup?", timeout=30, **kw):
    return httpx.post(server.url + "/v1/chat", timeout=timeout, **kw,
                      json={"model": model, "messages": [{"role": "user", "content": content}]})


def test_bounded_queue_then_429(misbehaving_backend, logs):
    server = routed(misbehaving_backend, logs, "--max-in-flight", "2", "--max-queued", "2")
    try:
        with ThreadPoolExecutor(8) as pool:
            responses = list(pool.map(lambda _: chat(server, "wait"), range(8)))
        statuses = sorted(r.status_code for r in responses)
        # Two served at once, two waited their turn, the rest refused at once.
        assert statuses == [200] * 4 + [429] * 4, statuses
        refused = [r for r in responses if r.status_code == 429]
        assert all(r.headers["Retry-After"] == "1" and r.json()["error"]["code"] == "server_busy"
                   for r in refused)
        assert metric(server.url, "askwise_in_flight_requests") == 0
        assert metric(server.url, "askwise_queued_requests") == 0
    finally:
        server.stop()


def test_queue_wait_is_bounded(misbehaving_backend, logs):
    server = routed(misbehaving_backend, logs, "--max-in-flight", "1", "--queue-timeout-s", "0.5")
    try:
        with ThreadPoolExecutor(2) as pool:
            first = pool.submit(chat, server, "wait")
            time.sleep(0.3)
            started = time.monotonic()
            second = chat(server, "wait")
            waited = time.monotonic() - started
        assert first.result().status_code == 200
        assert second.status_code == 429 and "queued for 0.5 s" in second.json()["error"]["message"]
        assert 0.4 < waited < 1.4, waited  # refused when its wait ran out, not when the slot freed
    finally:
        server.stop()


def test_load_far_past_the_limit_mixes_no_replies(misbehaving_backend, logs):
    """8x the admission limit, three waves: each admitted request gets its own reply."""
    server = routed(misbehaving_backend, logs, "--max-in-flight", "4", "--max-queued", "4")
    try:
        def one(_):
            token = uuid.uuid4().hex
            response = chat(server, "echo", content=f"token {token}")
            return token, response

        served = refused = 0
        with ThreadPoolExecutor(64) as pool:
            for _ in range(3):
                for token, response in pool.map(one, range(64)):
                    if response.status_code == 200:
                        served += 1
                        assert response.json()["message"] == f"You said: token {token}"
                    else:
                        refused += 1
                        assert response.status_code == 429, response.text
        assert served >= 3 * 8 and refused > 0, (served, refused)
        assert httpx.get(server.url + "/healthz").status_code == 200
        assert httpx.get(server.url + "/readyz").status_code == 200
        assert metric(server.url, "askwise_in_flight_requests") == 0
    finally:
        server.stop()


def test_hang_up_cancels_the_backend_request(misbehaving_backend, logs):
    server = routed(misbehaving_backend, logs, "--max-in-flight", "1")
    def holds():
        return httpx.get(misbehaving_backend.url + "/stats").json()["open_holds"]
    try:
        # In flight: the client gives up after 1 s; the backend must stop generating too.
        with pytest.raises(httpx.ReadTimeout):
            chat(server, "hold", timeout=1)
        assert wait_for(lambda: holds() == 0, 5), "the backend kept generating"
        assert wait_for(lambda: metric(server.url, "askwise_in_flight_requests") == 0, 5)

        # Queued: a client that leaves the queue frees its place.
        with ThreadPoolExecutor(1) as pool:
            holder = pool.submit(chat, server, "hold", timeout=3)
            assert wait_for(lambda: holds() == 1, 5)
            with pytest.raises(httpx.ReadTimeout):
                chat(server, "echo", timeout=0.5)
            assert wait_for(lambda: metric(server.url, "askwise_queued_requests") == 0, 5)
            with pytest.raises(httpx.ReadTimeout):
                holder.result()
        assert wait_for(lambda: holds() == 0, 5)
        assert chat(server, "echo", content="still serving").status_code == 200
    finally:
        server.stop()


def test_sigterm_drains_requests_in_flight(misbehaving_backend, logs):
    server = routed(misbehaving_backend, logs, "--max-in-flight", "8", "--drain-timeout-s", "20")
    try:
        with ThreadPoolExecutor(4) as pool:
            pending = [pool.submit(chat, server, "wait") for _ in range(4)]
            assert wait_for(lambda: metric(server.url, "askwise_in_flight_requests") == 4, 5)
            server.process.send_signal(signal.SIGTERM)
            statuses = [f.result().status_code for f in pending]
        assert statuses == [200] * 4, statuses
        # uvicorn re-raises the signal once drained, so the exit reads as "by SIGTERM".
        assert server.process.wait(15) in (0, -signal.SIGTERM)
        with pytest.raises(httpx.ConnectError):
            httpx.get(server.url + "/healthz")
        assert "draining: 4 in flight" in server.log.read_text()
    finally:
        server.stop()


def test_sigterm_gives_up_after_the_drain_timeout(misbehaving_backend, logs):
    server = routed(misbehaving_backend, logs, "--drain-timeout-s", "1")
    try:
        with ThreadPoolExecutor(1) as pool:
            held = pool.submit(chat, server, "hold")
            assert wait_for(lambda: metric(server.url, "askwise_in_flight_requests") == 1, 5)
            started = time.monotonic()
            server.process.send_signal(signal.SIGTERM)
            server.process.wait(15)
            assert time.monotonic() - started < 10
            with pytest.raises(httpx.HTTPError):
                held.result()
    finally:
        server.stop()


def test_api_keys_guard_every_route_but_liveness(misbehaving_backend, logs):
    server = routed(misbehaving_backend, logs, "--model", "echo", "--log-level", "debug",
                    env={"ASKWISE_API_KEYS": ",".join(KEYS)}, ready_path="/healthz")
    routes = [("POST", "/v1/chat"), ("POST", "/v1/chat/completions"), ("GET", "/v1/models"),
              ("GET", "/v1/presets"), ("GET", "/readyz"), ("GET", "/metrics"), ("GET", "/"),
              ("GET", "/openapi.json"), ("GET", "/docs"), ("GET", "/nowhere")]
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            for method, path in routes:
                for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": KEYS[0]}):
                    response = client.request(method, path, headers=headers, json={"messages": USER})
                    assert response.status_code == 401, (path, headers, response.text)
                    assert response.json()["error"]["code"] == "invalid_api_key"
                for key in KEYS:
                    response = client.request(method, path, json={"messages": USER},
                                              headers={"Authorization": f"Bearer {key}"})
                    assert response.status_code != 401, (path, response.text)
                    if path != "/nowhere":
                        assert response.status_code == 200, (path, response.text)
            assert client.get("/healthz").status_code == 200
    finally:
        server.stop()
    log = server.log.read_text()
    assert "GET /metrics" in log  # access logging was on
    assert not any(key in log for key in KEYS), "an API key reached the log"

