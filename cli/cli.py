"""The `askwise` command. Each part registers its own subcommands; heavy imports wait until
a subcommand runs."""

from __future__ import annotations

import argparse
import signal
import sys

from askwise import __version__


def build_parser() -> argparse.ArgumentParser:
    from askwise.client import chat_cli
    from askwise.policy import cli as policy_cli
    from askwise.server import cli as server_cli
    from askwise.training import cli as training_cli

    parser = argparse.ArgumentParser(prog="askwise", description="Steerable clarification policies.")
    parser.add_argument("--version", action="version", version=f"askwise {__version__}")
    subcommands = parser.add_subparsers(title="commands", metavar="COMMAND")
    server_cli.register(subcommands)
    policy_cli.register(subcommands)
    training_cli.register(subcommands)
    chat_cli.register(subcommands)
    return parser


def exit_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit, so that `finally` blocks and context exits run.

    `kill`, `docker stop` and CI timeouts send SIGTERM, whose default action ends Python
    without unwinding. The vLLM server that `askwise train`/`eval` start runs in its own
    session (so that Ctrl-C in a terminal reaches only us, and we stop it in order), so it
    would outlive the job and keep its cores and memory. Called by the commands that start
    one (train, eval, vllm-cpu); not by `askwise serve`, whose uvicorn drains on SIGTERM and then
    re-raises it to the handler it found, expecting the default one."""
    def handler(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


# The packages each optional dependency group brings, by the module name they import as: a
# command that needs one of them names the group to install instead of failing on an import.
EXTRAS = {
    "serve": {"torch", "transformers", "gguf", "safetensors", "tokenizers", "peft", "fastapi",
              "uvicorn", "aiohttp", "prometheus_client"},
    "train": {"accelerate", "matplotlib"},
}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "handler"):
        parser.print_help()
        return 2
    from askwise.policy.checkpoints import CheckpointError

    try:
        return args.handler(args)
    except CheckpointError as exc:  # a missing or wrong model: what to install or pass says it all
        print(f"askwise: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:
        # a config that fails validation (pydantic's error is a ValueError): each problem on
        # a line of its own, no traceback
        errors = getattr(exc, "errors", None)
        if not callable(errors):
            raise
        for error in errors():
            where = ".".join(str(part) for part in error.get("loc", ())) or "config"
            print(f"askwise: {where}: {error['msg']}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:
        top = (exc.name or "").split(".")[0]
        extra = next((name for name, modules in EXTRAS.items() if top in modules), None)
        if extra is None:
            raise
        print(f"askwise: this command needs {top}, which the '{extra}' extra installs: "
              f"pip install 'askwise[{extra}]'", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
