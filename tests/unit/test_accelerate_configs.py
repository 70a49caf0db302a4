"""The multi-GPU fine-tune configs in training/accelerate/ load as accelerate reads them, name
files that exist, and leave DeepSpeed's batch sizes to the Trainer ("auto")."""

import json
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = sorted((ROOT / "training" / "accelerate").glob("*.yaml"))


def test_there_is_one_for_each_kind_of_parallelism():
    kinds = {yaml.safe_load(p.read_text())["distributed_type"] for p in CONFIGS}
    assert kinds == {"MULTI_GPU", "FSDP", "DEEPSPEED"}
    assert len(CONFIGS) == 4  # DDP, FSDP, ZeRO-2, ZeRO-3


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_accelerate_loads_it(path):
    from accelerate.commands.config.config_args import ClusterConfig

    config = ClusterConfig.from_yaml_file(path)
    assert config.num_processes == 8 and config.num_machines == 1
    ds = (config.deepspeed_config or {}).get("deepspeed_config_file")
    if ds:
        settings = json.loads((ROOT / ds).read_text())
        assert settings["train_micro_batch_size_per_gpu"] == "auto"
        assert settings["gradient_accumulation_steps"] == "auto"
        assert settings["zero_optimization"]["stage"] == (3 if "zero3" in path.name else 2)
    # every config says how to launch it with this repository's command
    assert f"--config_file training/accelerate/{path.name} -m askwise train" in path.read_text()
