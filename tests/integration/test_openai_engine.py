"""The OpenAI engine against a backend that does not keep to structured outputs."""

import asyncio

from askwise.policy.actions import ACTION_STOP, action_prefixes, action_regex, action_tail_regexes
from askwise.policy.engines import SamplingParams
from askwise.policy.engines.openai_engine import OpenAIEngine

PARAMS = SamplingParams(max_tokens=40, allowed_prefixes=action_prefixes(), regex=action_regex(),
                        prefix_regexes=action_tail_regexes(), stop=ACTION_STOP, prefix_probabilities=True)


def test_a_backend_that_ignores_the_prefix_constraint_gets_whole_replies(misbehaving_backend):
    # Its "clarifier" answers the same whatever the constraint: the short request meant to
    # pick the prefix comes back with a whole reply, so the engine sends the reply as one
    # request, from then on too; the reply is intact and, without logprobs, has no probabilities.
    async def scenario():
        engine = OpenAIEngine(misbehaving_backend.url + "/v1")
        try:
            messages = [{"role": "user", "content": "Who won the world cup?"}]
            first = await engine.complete(messages, PARAMS, model="clarifier")
            separating = engine.separate_prefix
            chunks = [chunk async for chunk in engine.stream(messages, PARAMS, model="clarifier")]
            return first, separating, chunks
        finally:
            await engine.aclose()

    first, separating, chunks = asyncio.run(scenario())
    assert first.text == "#CLARIFY Which year do you mean?" and first.prefix_probabilities is None
    assert not separating
    assert chunks[-1].completion.text == first.text == "".join(c.text for c in chunks)
