"""What the policy IS: costs and presets, the prompt format, the action format, the reward,
and the engines that run a checkpoint. Importing this package does not import torch."""

from .actions import (
    ACTION_PREFIXES,
    ACTION_STOP,
    Action,
    ActionStreamParser,
    Interpretation,
    ParsedAction,
    action_prefixes,
    action_regex,
    format_action,
    parse_action,
)
from .costs import CostOverrides, Costs, Preset, UnknownPresetError, load_presets, resolve_costs
from .prompt import PROMPT_FORMAT_VERSION, Document, Turn, allowed_actions, render_prompt
from .reward import Outcome, best_f1, count_words, normalize_answer, reward, token_f1, turn_cost

__all__ = [
    "ACTION_PREFIXES", "ACTION_STOP", "action_prefixes", "Action", "ActionStreamParser",
    "Interpretation", "ParsedAction", "action_regex",
    "format_action", "parse_action", "Costs", "CostOverrides", "Preset", "UnknownPresetError",
    "load_presets", "resolve_costs", "PROMPT_FORMAT_VERSION", "Document", "Turn",
    "allowed_actions", "render_prompt", "Outcome", "best_f1", "count_words", "normalize_answer",
    "reward", "token_f1", "turn_cost",
]
