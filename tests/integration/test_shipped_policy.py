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


def test_the_shipped_calibration_was_measured_on_the_shipped_policy():
    from askwise.policy.calibrate import adapter_digest
    from askwise.policy.checkpoints import default_adapter
    from askwise.policy.value import has_value_head
    from askwise.server.app import policy_calibration
    from askwise.server.settings import Settings

    decision = "value" if has_value_head(default_adapter()) else "policy"
    calibration = policy_calibration(Settings(), decision)
    assert calibration is not None, "the default policy ships without calibration.json"
    # recompute it (askwise calibrate) whenever the default policy or its decision changes
    assert calibration.source["adapter_sha256"] == adapter_digest(default_adapter())
    assert calibration.source.get("decision", "policy") == decision
    assert policy_calibration(Settings(base_only=True), decision) is None  # another policy: none applies
    # rates measured with one decision say nothing of the other
    assert policy_calibration(Settings(), "policy" if decision == "value" else "value") is None
