"""Fitting the expected-value head (policy/value.py) on what forced actions realise in self-play.

    play      every item once per first action, greedily as served (question redraws on):
              #ANSWER, #MULTI_ANS, and #CLARIFY once per reading as the user's intent, so
              each action's F1 is an expectation over the intents, not one draw. A final
              first turn's reply cannot depend on the intent, so its F1 is already that
              expectation (episodes.py); a question's outcome does depend on it, hence one
              episode per reading.
    states    the policy model's last hidden state at the end of each item's conversation and
              documents, before the costs (`value.state_messages`): one per item
    fit       ridge regression from the state to the six expectations, its strength chosen
              by cross-validation on these items: the one whose held-out estimates, decided
              on, earn the most reward over the run's cost grid

The items are train items the policy was not fine-tuned on (by default those right after the
ones a run trains on): on its own training items a policy answers better than it will on a
user's, and the estimates must describe the latter. The costs written in each item's prompt
are drawn from the training grid; the replies barely move with them (the head's state does
not see them at all), and evaluation checks, per action and cost cell, that the mean
predicted F1 stays within 0.05 of the realised one.

Each stage writes its result into the folder and is skipped when rerun: the episodes resume
mid-way (JSONL), the states are saved once computed.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from askwise.policy import Action, Costs, Turn, render_prompt
from askwise.policy.value import ACTIONS, OUTPUTS, ValueHead, state_messages

from .data import Item, item_rng
from .episodes import Episode, EpisodeSpec

RIDGE_STRENGTHS = (1.0, 10.0, 100.0, 300.0, 1e3, 3e3, 1e4, 3e4, 1e5)
FOLDS = 5


def value_specs(items: list[Item], grid: list[Costs], seed: int) -> list[EpisodeSpec]:
    """Per item: a forced answer, a forced list, and a forced question per reading."""
    specs = []
    for item in items:
        costs = item_rng(seed, "value-costs", item.id).choice(grid)
        forced = [(Action.ANSWER, 0), (Action.MULTI_ANSWER, 0)]
        forced += [(Action.CLARIFY, intent) for intent in range(len(item.interpretations))]
        for sample, (action, intent) in enumerate(forced):
            specs.append(EpisodeSpec(item=item, sample=sample, intent=intent, costs=costs, forced=action))
    return specs


@dataclass(frozen=True)
class Realised:
    """One item's realised expectations: F1 and words per first action (`OUTPUTS` order)."""

    item_id: str
    values: tuple[float, ...]


def realised(items: list[Item], episodes: list[Episode]) -> list[Realised]:
    """The six expectations each item's forced episodes realised (items missing an action are
    left out: a rerun of the play stage fills them in)."""
    by_item: dict[str, dict[Action, list[Episode]]] = {}
    for e in episodes:
        by_item.setdefault(e.item_id, {}).setdefault(Action(e.forced), []).append(e)
    rows = []
    for item in items:
        groups = by_item.get(item.id, {})
        if any(a not in groups for a in ACTIONS):
            continue
        f1, words = [], []
        for action in ACTIONS:
            group = groups[action]
            # a question's episodes are one per intent: weigh them as the intents are drawn
            weights = [item.interpretations[e.intent].probability if action is Action.CLARIFY else 1.0
                       for e in group]
            if sum(weights) <= 0:
                weights = [1.0] * len(group)
            total = sum(weights)
            f1.append(sum(w * e.expected_f1(item) for w, e in zip(weights, group)) / total)
            words.append(sum(w * e.words for w, e in zip(weights, group)) / total)
        rows.append(Realised(item.id, tuple(f1 + words)))
    return rows


def state_prompt(item: Item, max_questions: int) -> list[dict[str, str]]:
    """The messages an item's opening turn reads its state from (no costs in them)."""
    return state_messages(render_prompt([Turn("user", item.query)], Costs(alpha=0.0, beta=0.0),
                                        item.documents, max_questions))


def prompt_states(model_dir: Path, conversations: list[list[dict[str, str]]], *, threads: int = 2,
                  desc: str = "states"):
    """The last hidden state (after the final norm) at the last token of each conversation,
    rendered by the model's chat template without a generation prompt: a (n, hidden) float32
    tensor. The model runs in the dtype the embedded engine serves it in on this hardware
    (bf16 where native), so the head is fitted on the states it will be applied to. One
    conversation per forward: on a CPU, padding a batch to its longest prompt costs more than
    the batch saves (2-core bf16: 4.4 prompts/s one at a time, 3.8 in batches of 8)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from askwise.policy.hardware import cpu_has_native_bf16

    torch.set_num_threads(threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if device == "cuda" or cpu_has_native_bf16() else torch.float32
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype).to(device).eval()
    states = torch.zeros(len(conversations), model.config.hidden_size)
    with torch.inference_mode():
        for k, messages in enumerate(tqdm(conversations, desc=desc, unit="item")):
            ids = tokenizer.apply_chat_template(messages, add_generation_prompt=False, tokenize=True,
                                                return_dict=False)
            hidden = model.model(input_ids=torch.tensor([list(ids)], device=device)).last_hidden_state
            states[k] = hidden[0, -1].float().cpu()
    return states


def _ridge(x, y, strength: float):
    """Ridge regression with an unpenalised intercept: (weight (outputs, features), bias)."""
    import torch

    mean_x, mean_y = x.mean(0), y.mean(0)
    xc, yc = x - mean_x, y - mean_y
    gram = xc.T @ xc + strength * torch.eye(x.shape[1], dtype=x.dtype)
    weight = torch.linalg.solve(gram, xc.T @ yc).T
    return weight, mean_y - weight @ mean_x


def decided_reward(predicted, targets, grid: list[Costs]) -> float:
    """Mean reward, over the items and the cost pairs of `grid`, of deciding by `predicted`
    (n, 6) when the outcomes are `targets` (n, 6)."""
    import torch

    from askwise.policy.value import decide, expected_from_outputs

    total = 0.0
    for costs in grid:
        questions = torch.tensor([1.0 if a is Action.CLARIFY else 0.0 for a in ACTIONS], dtype=targets.dtype)
        realised = targets[:, :3] - costs.alpha * questions - costs.beta * targets[:, 3:]
        for row, outputs in enumerate(predicted.tolist()):
            chosen = decide(expected_from_outputs(outputs, ACTIONS), costs)
            total += float(realised[row, ACTIONS.index(chosen)])
    return total / (len(grid) * len(targets))


def fit_head(states, targets, grid: list[Costs], seed: int = 0) -> tuple[ValueHead, dict]:
    """Ridge from states (n, hidden) to targets (n, 6). The strength is the one whose
    cross-validated estimates, decided on, earn the most reward over `grid` (a tie goes to the
    stronger, which strays less from the means): what matters is the action each estimate
    picks, not its squared error. Returns the head and what the choice saw, with each
    output's cross-validated R^2."""
    import torch

    x, y = states.double(), targets.double()
    n = x.shape[0]
    folds = FOLDS if n >= 2 * FOLDS else 2
    rng = item_rng(seed, "value-folds")
    order = list(range(n))
    rng.shuffle(order)
    predictions = {}
    for strength in RIDGE_STRENGTHS:
        predicted = torch.zeros_like(y)
        for fold in range(folds):
            held = torch.tensor([k for i, k in enumerate(order) if i % folds == fold])
            kept = torch.tensor([k for i, k in enumerate(order) if i % folds != fold])
            weight, bias = _ridge(x[kept], y[kept], strength)
            predicted[held] = x[held] @ weight.T + bias
        predictions[strength] = predicted
    rewards = {s: decided_reward(p, y, grid) for s, p in predictions.items()}
    best = max(RIDGE_STRENGTHS, key=lambda s: (round(rewards[s], 6), s))
    weight, bias = _ridge(x, y, best)
    spread = y.var(0).clamp_min(1e-12)
    r2 = (1 - ((predictions[best] - y) ** 2).mean(0) / spread).tolist()
    # the best fixed action over the grid, for scale: what deciding by the means earns
    fixed = decided_reward(y.mean(0).expand(n, -1), y, grid)
    report = {"items": n, "ridge_strength": best, "folds": folds, "cost_pairs": len(grid),
              "cv_r2": dict(zip(OUTPUTS, r2)),
              "cv_reward_by_strength": {f"{s:g}": r for s, r in rewards.items()},
              "reward_of_the_means": fixed}
    return ValueHead(weight.float(), bias.float()), report


def fit_from_folder(folder: Path, items: list[Item], model_dir: Path, max_questions: int,
                    threads: int, seed: int, grid: list[Costs]) -> tuple[ValueHead, dict]:
    """States (computed once, saved as states.pt) and realised outcomes of `folder`'s episodes,
    and the head fitted on them."""
    import torch

    from .episodes import load_episodes

    rows = realised(items, load_episodes(folder / "episodes.jsonl"))
    by_id = {item.id: item for item in items}
    states_path = folder / "states.pt"
    saved = torch.load(states_path) if states_path.exists() else {}
    missing = [r.item_id for r in rows if r.item_id not in saved]
    if missing:
        computed = prompt_states(model_dir, [state_prompt(by_id[i], max_questions) for i in missing],
                                 threads=threads)
        saved.update({item_id: computed[k] for k, item_id in enumerate(missing)})
        torch.save(saved, states_path)
    states = torch.stack([saved[r.item_id] for r in rows])
    targets = torch.tensor([r.values for r in rows])
    head, report = fit_head(states, targets, grid, seed)
    means = targets.mean(0).tolist()
    report["realised_means"] = dict(zip(OUTPUTS, means))
    (folder / "fit.json").write_text(json.dumps(report, indent=2) + "\n")
    return head, report


def cv_summary(report: dict) -> str:
    r2 = ", ".join(f"{k} {v:.2f}" for k, v in report["cv_r2"].items() if v is not None and math.isfinite(v))
    gain = report["cv_reward_by_strength"][f"{report['ridge_strength']:g}"] - report["reward_of_the_means"]
    return (f"{report['items']} items, ridge {report['ridge_strength']:g}, cross-validated R^2: {r2}; "
            f"deciding by them earns {gain:+.3f} a request over the best fixed action ({report['cost_pairs']} "
            "cost pairs, held-out items)")
