"""From behaviour to costs: the policy's action rates over a grid of (alpha, beta), fitted as
monotone curves, and the costs that give the rates an application asks for.

A calibration is measured on an application's own requests (`askwise calibrate`, which
needs no answers: the action taken is observable). Per cost pair it holds the rate of each
action under greedy decoding and the mean of the policy's action probabilities. The fit
makes the clarify rate non-increasing in alpha within each beta, and the multi-answer rate
non-increasing in beta within each alpha (isotonic regression, pool-adjacent-violators), as
the costs mean; the answer rate is what remains.

`solve` picks, among the measured cost pairs, the one whose fitted rates are nearest the
target (of near-equal ones, the middle one). It does not pick costs between them by default:
a policy reads its costs as text, and the shipped one acts on values it has not seen unlike
on their neighbours (on 100 held-out AmbigQA requests, P(clarify) averaged 0.34 at alpha
0.02 and 0.27 at 0.05, but 0.06 at 0.0266). `interpolate=True` searches between them too
(bilinear in log alpha and log beta) for policies that are smooth in their costs.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

ACTIONS = ("answer", "clarify", "multi_answer")
# Short names accepted in targets ("clarify=0.2,multi=0").
ALIASES = {"answer": "answer", "clarify": "clarify", "multi": "multi_answer",
           "multi_answer": "multi_answer", "multi_ans": "multi_answer"}
FORMAT = "askwise-calibration/1"


class CalibrationError(ValueError):
    """A target the calibration cannot meet, or a calibration that cannot be used."""


@dataclass(frozen=True)
class Cell:
    alpha: float
    beta: float
    n: int
    rates: dict[str, float]
    mean_probabilities: dict[str, float] | None = None


@dataclass(frozen=True)
class Solution:
    alpha: float
    beta: float
    predicted: dict[str, float]
    error: float  # the largest gap between a targeted rate and its prediction


def parse_target(text: str | dict) -> dict[str, float]:
    """`clarify=0.2,multi=0` (or a mapping) as {action: rate}."""
    items = text.items() if isinstance(text, dict) else (
        part.split("=", 1) for part in str(text).split(",") if part.strip())
    target = {}
    for item in items:
        if len(item) != 2:
            raise CalibrationError(f"target parts look like clarify=0.2, not {'='.join(item)!r}")
        name, value = str(item[0]).strip().lower(), item[1]
        if name not in ALIASES:
            raise CalibrationError(f"unknown action {name!r} in the target; use answer, clarify or multi")
        try:
            rate = float(value)
        except (TypeError, ValueError):
            raise CalibrationError(f"the target rate for {name} is not a number: {value!r}") from None
        if not 0.0 <= rate <= 1.0:
            raise CalibrationError(f"the target rate for {name} must be in [0, 1], not {rate}")
        target[ALIASES[name]] = rate
    if not target:
        raise CalibrationError("the target names no action")
    if sum(target.values()) > 1.0 + 1e-9:
        raise CalibrationError(f"the target rates add up to more than 1: {target}")
    return target


def isotonic_decreasing(values: list[float], weights: list[float]) -> list[float]:
    """The non-increasing sequence nearest `values` in weighted least squares (PAVA)."""
    blocks: list[list[float]] = []  # [mean, weight, length]
    for value, weight in zip(values, weights):
        blocks.append([value, max(weight, 1e-12), 1])
        while len(blocks) > 1 and blocks[-2][0] < blocks[-1][0]:
            mean2, weight2, len2 = blocks.pop()
            mean1, weight1, len1 = blocks[-1]
            blocks[-1] = [(mean1 * weight1 + mean2 * weight2) / (weight1 + weight2), weight1 + weight2, len1 + len2]
    return [mean for mean, _, length in blocks for _ in range(length)]


@dataclass
class Calibration:
    alphas: list[float]
    betas: list[float]
    cells: list[Cell]
    source: dict = field(default_factory=dict)  # what was measured: policy, requests

    def __post_init__(self):
        if len(self.alphas) < 2 or len(self.betas) < 2:
            raise CalibrationError("a calibration needs at least two alphas and two betas")
        if min(self.alphas) <= 0 or min(self.betas) <= 0:
            raise CalibrationError("calibration costs must be positive (the curves are fitted in log scale)")
        self.alphas, self.betas = sorted(self.alphas), sorted(self.betas)
        by_pair = {(c.alpha, c.beta): c for c in self.cells}
        missing = [(a, b) for a in self.alphas for b in self.betas if (a, b) not in by_pair]
        if missing:
            raise CalibrationError(f"the grid lacks {len(missing)} cost pairs, e.g. alpha={missing[0][0]}, "
                                   f"beta={missing[0][1]}")
        grid = [[by_pair[a, b] for b in self.betas] for a in self.alphas]  # [alpha][beta]
        self.fitted = {"clarify": [[0.0] * len(self.betas) for _ in self.alphas],
                       "multi_answer": [[0.0] * len(self.betas) for _ in self.alphas]}
        for j in range(len(self.betas)):  # clarify falls with alpha
            column = [grid[i][j] for i in range(len(self.alphas))]
            fit = isotonic_decreasing([c.rates["clarify"] for c in column], [c.n for c in column])
            for i, value in enumerate(fit):
                self.fitted["clarify"][i][j] = value
        for i in range(len(self.alphas)):  # multi-answer falls with beta
            row = grid[i]
            fit = isotonic_decreasing([c.rates["multi_answer"] for c in row], [c.n for c in row])
            for j, value in enumerate(fit):
                self.fitted["multi_answer"][i][j] = value

    # ------------------------------------------------------------------ prediction

    def predict(self, alpha: float, beta: float) -> dict[str, float]:
        """Fitted rates at (alpha, beta), inside the grid's range (clamped to it outside)."""
        i, u = _locate(self.alphas, alpha)
        j, v = _locate(self.betas, beta)
        rates = {}
        for action in ("clarify", "multi_answer"):
            f = self.fitted[action]
            rates[action] = ((1 - u) * (1 - v) * f[i][j] + u * (1 - v) * f[i + 1][j]
                             + (1 - u) * v * f[i][j + 1] + u * v * f[i + 1][j + 1])
        rates["answer"] = max(0.0, 1.0 - rates["clarify"] - rates["multi_answer"])
        return {a: rates[a] for a in ACTIONS}

    def solve(self, target: dict[str, float], tolerance: float = 0.05, interpolate: bool = False,
              points: int = 97) -> Solution:
        """The costs whose predicted rates come nearest `target` (largest gap at most
        `tolerance`): a measured pair, or with `interpolate` any pair in the grid's range.
        Raises CalibrationError naming the nearest rates it can reach."""
        target = parse_target(target)
        if interpolate:
            log_a = [math.log(self.alphas[0]) + k * (math.log(self.alphas[-1] / self.alphas[0])) / (points - 1)
                     for k in range(points)]
            log_b = [math.log(self.betas[0]) + k * (math.log(self.betas[-1] / self.betas[0])) / (points - 1)
                     for k in range(points)]
        else:
            log_a, log_b = [math.log(a) for a in self.alphas], [math.log(b) for b in self.betas]
        scored = []
        for la in log_a:
            for lb in log_b:
                predicted = self.predict(math.exp(la), math.exp(lb))
                error = max(abs(predicted[a] - rate) for a, rate in target.items())
                scored.append((error, la, lb, predicted))
        best = min(s[0] for s in scored)
        if best > tolerance:
            error, la, lb, predicted = min(scored, key=lambda s: s[0])
            raise CalibrationError(
                f"no cost pair in the calibrated range gives {_rates(target)} within {tolerance:g}; "
                f"the nearest reachable rates are {_rates(predicted)} (alpha={_round(math.exp(la))}, "
                f"beta={_round(math.exp(lb))}), {error:.2f} away")
        # Of the pairs as good as the best (within 0.01), the one nearest their centre.
        near = [s for s in scored if s[0] <= best + 0.01]
        ca, cb = (sum(s[1] for s in near) / len(near), sum(s[2] for s in near) / len(near))
        error, la, lb, _ = min(near, key=lambda s: (s[1] - ca) ** 2 + (s[2] - cb) ** 2)
        if interpolate:
            alpha, beta = _round(math.exp(la)), _round(math.exp(lb))
        else:  # exactly the measured values
            alpha = min(self.alphas, key=lambda a: abs(math.log(a) - la))
            beta = min(self.betas, key=lambda b: abs(math.log(b) - lb))
        predicted = self.predict(alpha, beta)
        return Solution(alpha, beta, predicted, max(abs(predicted[a] - r) for a, r in target.items()))

    # ------------------------------------------------------------------ files

    def to_json(self) -> dict:
        return {"format": FORMAT, "source": self.source, "alphas": self.alphas, "betas": self.betas,
                "cells": [{"alpha": c.alpha, "beta": c.beta, "n": c.n, "rates": c.rates,
                           "mean_probabilities": c.mean_probabilities} for c in self.cells],
                "fitted": self.fitted}

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_json(), indent=1) + "\n")

    @classmethod
    def from_json(cls, data: dict) -> Calibration:
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise CalibrationError(f"not an askwise calibration (format {FORMAT})")
        try:
            cells = [Cell(float(c["alpha"]), float(c["beta"]), int(c["n"]),
                          {a: float(c["rates"][a]) for a in ACTIONS}, c.get("mean_probabilities"))
                     for c in data["cells"]]
            return cls([float(a) for a in data["alphas"]], [float(b) for b in data["betas"]], cells,
                       data.get("source") or {})
        except (KeyError, TypeError, ValueError) as exc:
            raise CalibrationError(f"malformed calibration: {exc!r}") from None

    @classmethod
    def load(cls, path: str | Path) -> Calibration:
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise CalibrationError(f"cannot read the calibration {path}: {exc}") from None
        return cls.from_json(data)


def _locate(grid: list[float], x: float) -> tuple[int, float]:
    """Index of the grid interval holding x (log scale) and x's position in it, in [0, 1]."""
    x = min(max(x, grid[0]), grid[-1])
    i = max(0, min(len(grid) - 2, next((k for k in range(len(grid) - 1) if x <= grid[k + 1]), len(grid) - 2)))
    span = math.log(grid[i + 1] / grid[i])
    return i, (math.log(x / grid[i]) / span) if span > 0 else 0.0


def _round(x: float) -> float:
    """Three significant digits: costs a person can read and a prompt writes as given."""
    return float(f"{x:.3g}")


def _rates(rates: dict[str, float]) -> str:
    return ", ".join(f"{a} {r:.2f}" for a, r in rates.items())
