"""The shipped default policy: it loads in the server's engine and names the game it learned in."""

import asyncio

from askwise.policy import Costs, Turn, parse_action, render_prompt
from askwise.policy.checkpoints import default_adapter, read_meta
from askwise.policy.engines import SamplingParams
from askwise.policy.engines.transformers_engine import TransformersEngine
from askwise.policy.prompt import Document
from askwise.training.data import DOCUMENTS_VERSION

DOCUMENTS = [Document("The Main Street store closes at 9 pm."), Document("The airport store closes at midnight.")]


def test_the_shipped_policy_was_trained_in_the_current_game():
    meta = read_meta(default_adapter())
    assert meta["game"] == {"user": "literal", "documents": DOCUMENTS_VERSION}
    assert meta["setting"] == "grounded"


def test_the_server_engine_loads_the_shipped_policy_and_it_takes_an_action(base_checkpoint):
    engine = TransformersEngine(base_checkpoint, adapter=default_adapter(), dtype="float32")
    engine.wait_ready(300)
    try:
        prompt = render_prompt([Turn("user", "When does the store close?")], Costs(alpha=0.1, beta=0.005),
                               DOCUMENTS, 1)
        text = asyncio.run(engine.complete(prompt, SamplingParams(max_tokens=48))).text
    finally:
        asyncio.run(engine.aclose())
    assert parse_action(text).action is not None, text
