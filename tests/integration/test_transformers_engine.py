"""The in-process engine with the real base model: batching, constraints, streaming."""

import asyncio

import pytest

from askwise.policy.engines import EngineRejected, SamplingParams, UnknownModel
from askwise.policy.engines.transformers_engine import TransformersEngine

QUESTIONS = ["What is the capital of France?", "Who wrote Hamlet?", "Name three colors.",
             "What is 2+2?"]


def chat(question):
    return [{"role": "user", "content": question}]


@pytest.fixture(scope="module")
def engine(base_checkpoint):
    # float32: batching must not change greedy text, and in bf16 rounding under different
    # batch shapes does change it now and then (benchmarks/engine_batching.py counts how often).
    engine = TransformersEngine(base_checkpoint, dtype="float32", threads=1, max_batch_size=8,
                                batch_wait_s=0.05, max_model_len=512)
    engine.wait_ready(300)
    yield engine
    asyncio.run(engine.aclose())


def run(coro):
    return asyncio.run(coro)


def test_concurrent_requests_share_a_batch_and_match_serial_greedy(engine):
    params = SamplingParams(max_tokens=24)
    serial = [run(engine.complete(chat(q), params)) for q in QUESTIONS]
    waves = engine.waves
    batched = run(engine.complete_batch([chat(q) for q in QUESTIONS], params))
    assert engine.waves - waves < len(QUESTIONS)  # batched, not one request at a time
    assert [c.text for c in batched] == [c.text for c in serial]
    assert all(c.prompt_tokens > 0 and c.completion_tokens > 0 for c in batched)


@pytest.mark.parametrize("prefix", ["#ANSWER ", "#CLARIFY ", "#MULTI_ANS\n"])
def test_allowed_prefixes_force_the_start(engine, prefix):
    completion = run(engine.complete(chat("Who won the world cup?"),
                                     SamplingParams(max_tokens=12, allowed_prefixes=(prefix,))))
    assert completion.text.startswith(prefix)


def test_prefix_choice_is_left_to_the_model(engine):
    prefixes = ("#ANSWER ", "#CLARIFY ", "#MULTI_ANS\n")
    texts = run(engine.complete_batch([chat(q) for q in QUESTIONS],
                                      SamplingParams(max_tokens=8, allowed_prefixes=prefixes)))
    assert all(any(c.text.startswith(p) for p in prefixes) for c in texts)


def test_stream_pieces_add_up_to_the_completion(engine):
    async def collect():
        return [chunk async for chunk in engine.stream(chat("Who wrote Hamlet?"),
                                                       SamplingParams(max_tokens=20))]
    chunks = run(collect())
    assert chunks[-1].completion is not None
    assert "".join(c.text for c in chunks) == chunks[-1].completion.text
    assert len(chunks) > 3


def test_seeded_sampling_repeats(engine):
    params = SamplingParams(max_tokens=16, temperature=1.0, top_p=0.9, seed=7)
    first = run(engine.complete(chat("Tell me a story."), params))
    second = run(engine.complete(chat("Tell me a story."), params))
    assert first.text == second.text


def test_abandoned_stream_frees_the_engine(engine):
    async def scenario():
        stream = engine.stream(chat("Write a long poem about the sea."), SamplingParams(max_tokens=200))
        await anext(stream)
        await stream.aclose()
        return await engine.complete(chat("What is 2+2?"), SamplingParams(max_tokens=8))
    assert run(scenario()).completion_tokens > 0


def test_limits_and_names(engine):
    with pytest.raises(EngineRejected):
        run(engine.complete(chat("word " * 600), SamplingParams(max_tokens=8)))
    with pytest.raises(UnknownModel):
        run(engine.complete(chat("hi"), SamplingParams(), model="gpt-9"))


def test_stop_strings_end_the_reply_and_are_never_streamed(engine):
    params = SamplingParams(max_tokens=24, stop=(" of",))
    full = run(engine.complete(chat("What is the capital of France?"), SamplingParams(max_tokens=24)))
    assert " of" in full.text  # "The capital of France is Paris."

    async def collect():
        return [c async for c in engine.stream(chat("What is the capital of France?"), params)]
    chunks = run(collect())
    final = chunks[-1].completion
    assert final.text == full.text[:full.text.index(" of")] and final.finish_reason == "stop"
    assert "".join(c.text for c in chunks) == final.text


def test_prefix_probabilities_come_from_the_step_that_picks_the_prefix(engine):
    prefixes = ("#ANSWER ", "#CLARIFY ", "#MULTI_ANS\n")
    params = SamplingParams(max_tokens=8, allowed_prefixes=prefixes, prefix_probabilities=True)
    for completion in run(engine.complete_batch([chat(q) for q in QUESTIONS], params)):
        probabilities = completion.prefix_probabilities
        assert set(probabilities) == set(prefixes) and sum(probabilities.values()) == pytest.approx(1.0)
        # greedy decoding takes the prefix the model found likeliest
        assert completion.text.startswith(max(probabilities, key=probabilities.get))
    assert run(engine.complete(chat("Hi"), SamplingParams(max_tokens=4))).prefix_probabilities is None
    only = run(engine.complete(chat("Hi"), SamplingParams(max_tokens=4, allowed_prefixes=("#ANSWER ",),
                                                          prefix_probabilities=True)))
    assert only.prefix_probabilities == {"#ANSWER ": 1.0}


def test_a_stream_carries_the_prefix_probabilities_from_the_picking_chunk_on(engine):
    prefixes = ("#ANSWER ", "#CLARIFY ")
    params = SamplingParams(max_tokens=12, allowed_prefixes=prefixes, prefix_probabilities=True)

    async def collect():
        return [chunk async for chunk in engine.stream(chat("Who won the world cup?"), params)]
    chunks = run(collect())
    text = ""
    for chunk in chunks[:-1]:
        text += chunk.text
        if any(text.startswith(p) for p in prefixes):
            assert chunk.prefix_probabilities is not None
    assert chunks[-1].completion.prefix_probabilities == chunks[-2].prefix_probabilities


def test_a_list_from_the_readings_is_each_follow_up_generated_in_one_batch(engine):
    from askwise.policy import Action, Costs, Document, Turn, parse_action, render_prompt
    from askwise.policy.readings import compose_list

    turns = [Turn("user", "Who won the world cup?")]
    documents = [Document("The 2014 FIFA World Cup was won by Germany."),
                 Document("The 2018 FIFA World Cup was won by France.")]
    costs, params = Costs(alpha=0.1, beta=0.002), SamplingParams(max_tokens=24)
    question = "Do you mean the 2014 World Cup or the 2018 World Cup?"
    waves = engine.waves
    composed = run(compose_list(engine, turns, documents, costs, params, question=question))
    batched_waves, waves = engine.waves - waves, engine.waves
    assert [r.interpretation for r in composed.parsed.interpretations] == [
        "the 2014 World Cup", "the 2018 World Cup"]
    for reading in composed.parsed.interpretations:
        # each line is what the policy answers once the user has picked that reading
        follow_up = render_prompt(turns + [Turn("assistant", question, Action.CLARIFY),
                                           Turn("user", reading.interpretation)], costs, documents, 1)
        alone = run(engine.complete(follow_up, SamplingParams(max_tokens=24, allowed_prefixes=("#ANSWER ",),
                                                              stop=("\n#",))))
        assert reading.answer == parse_action(alone.text).message
    assert batched_waves < engine.waves - waves  # the lines decoded together, not in turn
    assert composed.parsed.message.splitlines()[0].startswith("the 2014 World Cup: ")
