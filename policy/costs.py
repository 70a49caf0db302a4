"""Cost coefficients and named presets.

A request prices two things: `alpha`, paid once per clarifying question, and `beta`, paid
per word of the final answer. The policy maximises F1 - alpha*questions - beta*words, so
these two numbers are the whole steering interface.

Presets name cost pairs for common clients. Built-in presets live in `presets.toml` next to
this file; a user file in the same format adds presets or overrides built-in ones.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_PRESET = "default"
# F1 is at most 1, so a cost above 1 already rules its action out; the bound only keeps
# cost * words finite (a beta of 1e308 would make the reported cost infinity, not JSON).
MAX_COST = 1000.0

class Costs(BaseModel):
    """The two prices a request pays, each in [0, MAX_COST]; ints are accepted as floats.

    Strict: a cost sent as the string "0.1" is a client bug, not something to coerce.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    alpha: float = Field(ge=0.0, le=MAX_COST, allow_inf_nan=False, strict=True,
                         description="Cost of one clarifying question.")
    beta: float = Field(ge=0.0, le=MAX_COST, allow_inf_nan=False, strict=True,
                        description="Cost of each word of the final answer.")


class CostOverrides(BaseModel):
    """Per-request numbers; each one given replaces the preset's value."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    alpha: float | None = Field(default=None, ge=0.0, le=MAX_COST, allow_inf_nan=False, strict=True,
                                description="Cost of one clarifying question.")
    beta: float | None = Field(default=None, ge=0.0, le=MAX_COST, allow_inf_nan=False, strict=True,
                               description="Cost of each word of the final answer.")


@dataclass(frozen=True)
class Preset:
    name: str
    costs: Costs
    rationale: str
    # Given as target action rates ({"clarify": 0.2}): `costs` are what a calibration
    # resolved them to.
    target: dict[str, float] | None = None


class UnknownPresetError(ValueError):
    def __init__(self, name: str, known: list[str]):
        super().__init__(f"unknown preset {name!r}; known presets: {', '.join(sorted(known))}")
        self.name = name
        self.known = known


def _target_preset(name: str, entry: dict, source: str, calibration) -> Preset:
    """A preset given as action rates, e.g. `target = {clarify = 0.2, multi = 0}`: the
    calibration finds its costs."""
    from .calibration import CalibrationError, parse_target

    if "alpha" in entry or "beta" in entry:
        raise ValueError(f"{source}: preset {name!r} gives both a target and costs; give one")
    if calibration is None:
        raise ValueError(f"{source}: preset {name!r} gives target rates; the server needs a "
                         "calibration to turn them into costs (--calibration FILE, from askwise calibrate)")
    try:
        target = parse_target(entry["target"])
        solution = calibration.solve(target)
    except CalibrationError as exc:
        raise ValueError(f"{source}: preset {name!r}: {exc}") from None
    return Preset(name, Costs(alpha=solution.alpha, beta=solution.beta), str(entry.get("rationale", "")),
                  target)


def _parse_presets(text: str, source: str, calibration=None) -> dict[str, Preset]:
    data = tomllib.loads(text)
    table = data.get("presets")
    if not isinstance(table, dict):
        raise ValueError(f"{source}: expected a [presets.<name>] table")
    presets = {}
    for name, entry in table.items():
        if not isinstance(entry, dict):
            raise ValueError(f"{source}: preset {name!r} must be a table")
        if "target" in entry:
            presets[name] = _target_preset(name, entry, source, calibration)
            continue
        try:
            costs = Costs(alpha=entry["alpha"], beta=entry["beta"])
        except KeyError as exc:
            raise ValueError(f"{source}: preset {name!r} lacks {exc.args[0]!r}") from None
        except ValueError as exc:
            raise ValueError(f"{source}: preset {name!r}: {exc}") from None
        presets[name] = Preset(name, costs, str(entry.get("rationale", "")))
    return presets


def load_presets(path: str | Path | None = None, calibration=None) -> dict[str, Preset]:
    """Built-in presets, updated by the presets file at `path` when one is given. Presets
    given as target rates are resolved with `calibration` (a `calibration.Calibration`)."""
    builtin = resources.files("askwise.policy").joinpath("presets.toml").read_text()
    presets = _parse_presets(builtin, "built-in presets.toml", calibration)
    if path is not None:
        presets.update(_parse_presets(Path(path).read_text(), str(path), calibration))
    if DEFAULT_PRESET not in presets:
        raise ValueError(f"the presets must define {DEFAULT_PRESET!r}")
    return presets


def resolve_costs(
    presets: dict[str, Preset],
    preset: str | None = None,
    overrides: CostOverrides | None = None,
) -> tuple[Costs, str]:
    """The costs a request pays and the preset they started from.

    Numbers given in `overrides` win over the preset's; with neither, the `default` preset.
    """
    name = preset or DEFAULT_PRESET
    if name not in presets:
        raise UnknownPresetError(name, list(presets))
    base = presets[name].costs
    if overrides is None:
        return base, name
    return Costs(
        alpha=base.alpha if overrides.alpha is None else overrides.alpha,
        beta=base.beta if overrides.beta is None else overrides.beta,
    ), name


def format_cost(value: float) -> str:
    """How a cost is written into the prompt. Training and serving must agree on this."""
    if not math.isfinite(value):
        raise ValueError("costs must be finite")
    return f"{value:g}"
