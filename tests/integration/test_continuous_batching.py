"""The embedded engine batches continuously: requests join a running batch, leave it when
they finish or hang up, share cached prompt prefixes, and wait when the KV budget is full.
Greedy float32 text must not depend on what else runs."""

import asyncio

import pytest
from helpers import wait_for

from askwise.policy.engines import SamplingParams
from askwise.policy.engines.transformers_engine import TransformersEngine

LONG = [{"role": "user", "content": "Write a long poem about the sea, with many verses."}]
SHORT = [{"role": "user", "content": "What is 2+2?"}]
SYSTEM = {"role": "system", "content": "Answer from these notes. " + " ".join(
    f"Note {i}: the store on street {i} closes at {i % 12 + 1} pm." for i in range(30))}


def run(coro):
    return asyncio.run(coro)


@pytest.fixture(scope="module")
def engine(base_checkpoint):
    engine = TransformersEngine(base_checkpoint, dtype="float32", threads=1, max_batch_size=8,
                                max_model_len=1024, kv_cache_tokens=4096, max_step_tokens=64)
    engine.wait_ready(300)
    yield engine
    run(engine.aclose())


def serial(engine, conversations, params):
    return [run(engine.complete(c, params)).text for c in conversations]


def test_a_request_joins_while_others_decode_and_finishes_first(engine):
    async def scenario():
        stream = engine.stream(LONG, SamplingParams(max_tokens=120))
        seen = ""
        async for chunk in stream:  # the long reply is decoding
            seen += chunk.text
            if len(seen) > 10:
                break
        short = await engine.complete(SHORT, SamplingParams(max_tokens=6))
        at_short_done = len(seen)
        async for chunk in stream:
            seen += chunk.text
            if chunk.completion is not None:
                final = chunk.completion
        return short, at_short_done, final

    short, at_short_done, final = run(scenario())
    assert short.completion_tokens > 0
    # The short request did not wait for the long one: it finished while that one went on.
    assert at_short_done < len(final.text), (at_short_done, final)


def test_mixed_prompt_lengths_give_the_serial_greedy_text(engine):
    conversations = [SHORT, LONG, [SYSTEM, {"role": "user", "content": "When does street 7 close?"}],
                     [{"role": "user", "content": "Name three colors. " * 40}]]
    params = SamplingParams(max_tokens=20)
    alone = serial(engine, conversations, params)
    together = [c.text for c in run(engine.complete_batch(conversations, params))]
    assert together == alone


def test_a_shared_prefix_is_reused_and_changes_nothing(engine):
    questions = ["When does street 3 close?", "When does street 11 close?", "Which street closes first?"]
    conversations = [[SYSTEM, {"role": "user", "content": q}] for q in questions]
    params = SamplingParams(max_tokens=16)
    hits = engine.prefix_hits
    first = serial(engine, conversations, params)
    assert engine.prefix_hits >= hits + len(questions) - 1  # the first one caches the notes
    together = [c.text for c in run(engine.complete_batch(conversations, params))]
    assert together == first


def test_a_hang_up_mid_batch_frees_its_place(engine):
    async def scenario():
        streams = [engine.stream(LONG, SamplingParams(max_tokens=200)) for _ in range(3)]
        for stream in streams:
            await anext(stream)
        await streams[1].aclose()  # one caller hangs up while the others decode
        texts = []
        for stream in (streams[0], streams[2]):
            async for chunk in stream:
                if chunk.completion is not None:
                    texts.append(chunk.completion)
        return texts

    done = run(scenario())
    assert len(done) == 2 and all(c.completion_tokens > 0 for c in done)
    # Every range went back: only cached prefixes hold positions once nothing runs. The
    # engine may finish the others before it gets to retire the one that hung up.
    assert wait_for(lambda: engine.running == 0)
    cached = sum(len(p.tokens) for p in engine.pool.prefixes)
    assert engine.pool.ranges.free_tokens == engine.kv_cache_tokens - cached


def test_requests_beyond_the_kv_budget_wait_instead_of_growing_memory(base_checkpoint):
    # Room for about two of these requests at a time: the rest must queue, and all finish.
    engine = TransformersEngine(base_checkpoint, dtype="float32", threads=1, max_batch_size=8,
                                max_model_len=256, kv_cache_tokens=256)
    engine.wait_ready(300)
    try:
        pool_bytes = engine.pool.bytes
        params = SamplingParams(max_tokens=60)
        conversations = [[{"role": "user", "content": f"Count from {i} to {i + 20}."}] for i in range(5)]
        alone = serial(engine, conversations, params)
        together = run(engine.complete_batch(conversations, params))
        assert [c.text for c in together] == alone
        assert engine.pool.bytes == pool_bytes
        assert engine.waves >= 2 + len(conversations)  # they could not all join at once
    finally:
        run(engine.aclose())
