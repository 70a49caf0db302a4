"""The decision by expected value: what each action is expected to win and cost, and the
argmax for the request's costs.

The reward is linear in the costs, R = F1 - alpha * questions - beta * words, so for any
(alpha, beta) the best action follows from three expectations per action: E[F1 of the final
answer], E[questions] and E[words of the final answer]. A small linear head reads them off
the policy model's hidden state at the end of the conversation and documents, *before* the
costs (prompt.py puts the costs in a message of their own, last): one state per request
serves every cost pair, so the decision is exact for costs never seen in training and moves
monotonically with both costs by construction (a larger alpha can only lower the clarify
value, a larger beta the value of the wordier action).

The head is six numbers, E[F1] and E[words] for answer, multi-answer and clarify, fitted on
the outcomes of forced actions in self-play (training/value.py); E[questions] is 1 for a
question, 0 otherwise. It is applied where the model runs: inside the embedded engine, from
the prefill it runs anyway (`ValueHead.decision` builds the engine's `StateDecision`), and
over vLLM as a sequence-classification model with this head as its score layer
(`export_value_model`), served by vLLM's pooling runner.

The value decision is taken on a turn that may still ask (no question asked yet in this
episode), where the costs trade off all three actions. After a question the conversation's
state is one the head was not fitted on; the policy's own tag writes the follow-up, which in
self-play answered in every episode (docs/results.md).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .actions import ACTION_PREFIXES, Action
from .costs import Costs
from .engines.base import StateDecision
from .reward import reward

HEAD_WEIGHTS = "value_head.safetensors"
HEAD_META = "value_head.json"
# The order of the head's outputs: E[F1] per action, then E[words] per action.
ACTIONS = (Action.ANSWER, Action.MULTI_ANSWER, Action.CLARIFY)
OUTPUTS = tuple(f"{kind}_{a.value}" for kind in ("f1", "words") for a in ACTIONS)
# Ties go to the cheaper turn for the user: an answer, then a question, then a list.
TIE_ORDER = (Action.ANSWER, Action.CLARIFY, Action.MULTI_ANSWER)
STATE_VERSION = "conversation-end-1"  # the last token of the prompt without its costs message


@dataclass(frozen=True)
class Expected:
    """What an action is expected to give on this request: the expectations of what an
    episode measures (`reward.Outcome`), so its value at any costs is the same reward."""

    f1: float
    words: float
    questions: float

    def value(self, costs: Costs) -> float:
        return reward(self.f1, self.questions, self.words, costs)


def expected_from_outputs(outputs: Sequence[float], allowed: Sequence[Action]) -> dict[Action, Expected]:
    """The head's six outputs as `Expected` per allowed action. A linear head can leave the
    ranges a little; F1 is clipped to [0, 1] and words to >= 0 so that no estimate promises
    more than an action can give."""
    if len(outputs) != len(OUTPUTS):
        raise ValueError(f"a value head gives {len(OUTPUTS)} outputs, got {len(outputs)}")
    result = {}
    for k, action in enumerate(ACTIONS):
        if action in allowed:
            result[action] = Expected(f1=min(1.0, max(0.0, float(outputs[k]))),
                                      words=max(0.0, float(outputs[len(ACTIONS) + k])),
                                      questions=1.0 if action is Action.CLARIFY else 0.0)
    return result


def decide(expected: dict[Action, Expected], costs: Costs) -> Action:
    """The action with the highest expected reward at `costs` (ties: `TIE_ORDER`)."""
    return max(expected, key=lambda a: (expected[a].value(costs), -TIE_ORDER.index(a)))


def state_messages(messages: list[dict[str, str]]) -> list[dict[str, str]]:
    """The prompt's messages without the last one (the costs, prompt.py): what the state is
    read from. Its last token's hidden state is the same whatever the costs."""
    if len(messages) < 2 or messages[-1]["role"] != "system":
        raise ValueError("a policy prompt ends with its costs message")
    return messages[:-1]


def decides_by_value(allowed: Sequence[Action]) -> bool:
    """Whether the value decision takes this turn: one that may still ask (module docstring)."""
    return Action.CLARIFY in allowed


class ValueHead:
    """A linear map from the policy's hidden state to the six expectations (`OUTPUTS`)."""

    def __init__(self, weight, bias, meta: dict | None = None):
        self.weight = weight  # torch tensor (6, hidden)
        self.bias = bias  # (6,)
        self.meta = meta or {}

    @property
    def hidden_size(self) -> int:
        return int(self.weight.shape[1])

    def outputs(self, state) -> list[float]:
        """The six expectations for one state (a 1-D tensor of `hidden_size`)."""
        state = state.to(self.weight.dtype)
        return (self.weight @ state + self.bias).tolist()

    def expected(self, state, allowed: Sequence[Action] = ACTIONS) -> dict[Action, Expected]:
        return expected_from_outputs(self.outputs(state), allowed)

    def decision(self, costs: Costs, allowed: Sequence[Action], prefix_messages: int,
                 report: Callable[[Action, dict[Action, Expected]], object] | None = None
                 ) -> StateDecision:
        """The in-process form: choose the action from the state, allow only its prefix."""
        def choose(state):
            expected = self.expected(state, allowed)
            action = decide(expected, costs)
            payload = (action, expected) if report is None else report(action, expected)
            return (ACTION_PREFIXES[action],), payload

        return StateDecision(prefix_messages, choose)

    def save(self, directory: str | Path, **meta) -> None:
        from safetensors.torch import save_file

        directory = Path(directory)
        save_file({"weight": self.weight.contiguous(), "bias": self.bias.contiguous()},
                  str(directory / HEAD_WEIGHTS))
        self.meta = {"outputs": list(OUTPUTS), "state": STATE_VERSION,
                     "hidden_size": self.hidden_size, **self.meta, **meta}
        (directory / HEAD_META).write_text(json.dumps(self.meta, indent=2) + "\n")

    @classmethod
    def load(cls, directory: str | Path) -> ValueHead:
        import torch
        from safetensors.torch import load_file

        directory = Path(directory)
        meta = json.loads((directory / HEAD_META).read_text())
        if meta.get("outputs") != list(OUTPUTS) or meta.get("state") != STATE_VERSION:
            raise ValueError(f"{directory / HEAD_META}: a value head for outputs {meta.get('outputs')} "
                             f"and state {meta.get('state')!r}; this askwise reads {list(OUTPUTS)} "
                             f"and {STATE_VERSION!r}")
        tensors = load_file(str(directory / HEAD_WEIGHTS))
        return cls(tensors["weight"].to(torch.float32), tensors["bias"].to(torch.float32), meta)


def has_value_head(directory: str | Path | None) -> bool:
    return directory is not None and (Path(directory) / HEAD_WEIGHTS).is_file()


def export_value_model(merged: Path, head: ValueHead, directory: Path) -> None:
    """A sequence-classification checkpoint of the merged policy with `head` as its score
    layer (bias included, which vLLM loads), for vLLM's pooling runner: `/classify` on the
    prompt without its costs, `use_activation: false`, gives the six expectations."""
    import torch
    from safetensors.torch import load_file, save_file
    from transformers import AutoConfig, AutoTokenizer

    directory.mkdir(parents=True, exist_ok=True)
    config = AutoConfig.from_pretrained(merged)
    if config.architectures != ["LlamaForCausalLM"]:
        raise ValueError(f"{merged}: value export knows LlamaForCausalLM checkpoints, not "
                         f"{config.architectures}")
    config.architectures = ["LlamaForSequenceClassification"]
    config.num_labels = len(OUTPUTS)
    config.id2label = dict(enumerate(OUTPUTS))
    config.label2id = {name: k for k, name in enumerate(OUTPUTS)}
    config.save_pretrained(directory)
    tensors = {}
    for path in sorted(Path(merged).glob("*.safetensors")):
        tensors.update({name: t for name, t in load_file(str(path)).items() if not name.startswith("lm_head.")})
    tensors["score.weight"] = head.weight.to(torch.float32).contiguous()
    tensors["score.bias"] = head.bias.to(torch.float32).contiguous()
    save_file(tensors, str(directory / "model.safetensors"), metadata={"format": "pt"})
    AutoTokenizer.from_pretrained(merged).save_pretrained(directory)
    (directory / HEAD_META).write_text(json.dumps(head.meta, indent=2) + "\n")
