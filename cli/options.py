"""Command-line flags generated from a pydantic model: one flag per documented field.

The server's `Settings` and the trainer's `TrainConfig` are each described once, as fields
with descriptions; their subcommands get `--field-name` flags from here. A flag left unset
stays None, so the environment (for settings) or the field's default stays in charge.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Literal, get_args, get_origin

from pydantic import BaseModel


def add_model_arguments(parser: argparse.ArgumentParser, model: type[BaseModel],
                        env_prefix: str | None = None) -> None:
    for name, info in model.model_fields.items():
        flag = "--" + name.replace("_", "-")
        annotation = info.annotation
        choices, nargs = None, None
        if get_origin(annotation) is Literal:
            choices, kind = list(get_args(annotation)), str
        elif get_origin(annotation) in (list, tuple):
            nargs, kind = "+", get_args(annotation)[0]
            if get_origin(kind) is Literal:
                choices, kind = list(get_args(kind)), str
        else:
            types = [t for t in (get_args(annotation) or (annotation,)) if t is not type(None)]
            kind = types[0]
        if kind not in (bool, int, float, str, Path):
            continue  # structured fields are set from a config file, not a flag
        default_text = f" (default: {info.default})" if info.default is not None else ""
        env_text = f" [env {env_prefix}{name.upper()}]" if env_prefix else ""
        help_text = (info.description or "").replace("%", "%%") + default_text + env_text
        if kind is bool:
            parser.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction,
                                default=None, help=help_text)
        else:
            parser.add_argument(flag, dest=name, type=kind, choices=choices, nargs=nargs,
                                default=None, help=help_text)


def given_arguments(args: argparse.Namespace, model: type[BaseModel]) -> dict:
    """The fields of `model` that were set on the command line."""
    return {name: value for name, value in vars(args).items()
            if name in model.model_fields and value is not None}
