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
