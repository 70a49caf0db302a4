"""`askwise train` and `askwise eval`: flags generated from TrainConfig and EvalConfig."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from askwise.options import add_model_arguments, given_arguments

if TYPE_CHECKING:  # the command imports its heavy modules only when it runs
    from .evaluate import EvalConfig


def register(subcommands) -> None:
    from .config import TrainConfig
    from .evaluate import EvalConfig

    train = subcommands.add_parser(
        "train", help="train a steerable policy: collaborative self-play + ReST",
        description="Bootstrap, then ReST iterations of self-play (grow), relabelling for every "
        "training cost pair (improve) and LoRA fine-tuning. Rerun with the same --output-dir "
        "to resume. Runs under `accelerate launch` unchanged.")
    train.add_argument("--config", type=Path, default=None,
                       help="a config.json (as a run writes it); flags override its fields")
    add_model_arguments(train, TrainConfig)
    train.set_defaults(handler=run_train)

    evaluate = subcommands.add_parser(
        "eval", help="evaluate a policy over a grid of costs against baselines",
        description="Mean reward, F1 and action rates per (alpha, beta) cell for the policy, the "
        "prompted base model, the fixed strategies and the best forced reply per item; Markdown, JSON and PNG plots.")
    add_model_arguments(evaluate, EvalConfig)
    evaluate.add_argument("--no-adapter", action="store_true",
                          help="evaluate the base model itself (no adapter, no baselines of it)")
    evaluate.set_defaults(handler=run_eval)


def run_train(args: argparse.Namespace) -> int:
    from askwise.cli import exit_on_sigterm

    from .config import TrainConfig
    from .rest import train

    exit_on_sigterm()
    given = given_arguments(args, TrainConfig)
    config = TrainConfig.load(args.config, **given) if args.config else TrainConfig(**given)
    result = train(config)
    from accelerate import PartialState

    if PartialState().is_main_process:  # under accelerate launch, one line, not one per process
        print(result)
    return 0


def eval_config(args: argparse.Namespace) -> EvalConfig:
    from askwise.policy.checkpoints import default_adapter, trained_grid

    from .evaluate import EvalConfig

    given = given_arguments(args, EvalConfig)
    if not args.no_adapter and given.get("adapter") is None:
        given["adapter"] = default_adapter()
    for field, values in trained_grid(given.get("adapter")).items():
        given.setdefault(field, values)  # flags win over what the adapter records
    return EvalConfig(**given)


def run_eval(args: argparse.Namespace) -> int:
    from askwise.cli import exit_on_sigterm

    from .evaluate import IncompleteEvaluation, evaluate

    exit_on_sigterm()
    config = eval_config(args)
    try:
        summary = evaluate(config)
    except IncompleteEvaluation as exc:
        print(f"askwise: {exc}", file=sys.stderr)
        return 1
    print((config.output_dir / "eval.md").read_text())
    print(json.dumps({k: v for k, v in summary.items() if k != "cells"}, indent=2))
    return 0
