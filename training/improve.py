"""ReST's improve step: relabel every episode for every training cost pair, keep the best.

R = F1 - alpha*questions - beta*words is a known function of what an episode measured, so an
episode played once is scored for all cost pairs of the grid afterwards; costs in the prompt
while playing do not matter for this (the kept episode is re-prompted with the costs it was
kept for).

Action clustering: per (item, cost pair), the item's episodes are grouped by their first
action, and each group's value is its mean reward (with F1 in expectation over intents where
the reply could not depend on the intent; see episodes.py). The best group's action is the one
to learn for that item at those costs; within it the highest-reward episode is kept. Choosing
by a group mean rather than by the single best episode stops a lucky `#ANSWER` (right intent
by chance) from beating a question that is right every time.

With `pool="readings"` the group means are pooled further, over the items with the same
number of readings (`data.readings`): per cost pair, every item of a class learns the action
with the best mean over the class, from its own best episode of that action. Four samples
per item are a noisy estimate of what asking earns on that item, and the policy cannot see
which ambiguous query a question will pay on; it can see whether a query is ambiguous. Per-
item labels then teach it to ask on some ambiguous queries and not on others that look the
same, so it asks less than asking on every ambiguous query would pay (the readings rule of
evaluate.py). The class labels teach that rule; the policy still has to find the ambiguity
in the documents.

`examples_per_item` cost pairs per item go to fine-tuning. `balanced` picks them so that the
item's different best actions all appear: the same documents and query with different costs
and different actions is exactly the contrast the policy has to learn. That also makes a best
action that holds for 3 of an item's 30 cost pairs as common in training as one that holds for
27, which pushes the policy towards rare actions everywhere. `random` picks the pairs
uniformly, so each action keeps its share of the data.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Literal

from askwise.policy import Action, Costs

from .data import Item, item_rng, readings
from .episodes import Episode, assistant_examples

ACTION_ORDER = (Action.ANSWER, Action.CLARIFY, Action.MULTI_ANSWER)  # tie-break: cheapest first


@dataclass(frozen=True)
class Choice:
    item_id: str
    costs: Costs
    action: Action
    value: float  # mean reward of the action's group
    episode: Episode  # the group's best episode


def action_values(episodes: list[Episode], item: Item, costs: Costs) -> dict[Action, float]:
    groups: dict[Action, list[float]] = defaultdict(list)
    for episode in episodes:
        groups[episode.first_action].append(episode.outcome(item).reward(costs))
    return {action: sum(r) / len(r) for action, r in groups.items()}


def best_choice(episodes: list[Episode], item: Item, costs: Costs,
                values: dict[Action, float] | None = None) -> Choice:
    """The action with the best value (by default the item's own `action_values`) and the
    item's best episode of it."""
    values = action_values(episodes, item, costs) if values is None else values
    action = max(values, key=lambda a: (values[a], -ACTION_ORDER.index(a)))
    best = max((e for e in episodes if e.first_action is action),
               key=lambda e: e.outcome(item).reward(costs))
    return Choice(item.id, costs, action, values[action], best)


def improve(items: list[Item], episodes: list[Episode], grid: list[Costs],
            min_reward: float | None = None, pool: Literal["item", "readings"] = "item") -> list[Choice]:
    by_item: dict[str, list[Episode]] = defaultdict(list)
    for episode in episodes:
        by_item[episode.item_id].append(episode)
    played = [item for item in items if by_item[item.id]]
    choices = []
    for costs in grid:
        if pool == "readings":
            cell = pooled_choices(played, by_item, costs)
        else:
            cell = [best_choice(by_item[item.id], item, costs) for item in played]
        choices += [c for c in cell if min_reward is None or c.value >= min_reward]
    return choices


def pooled_choices(items: list[Item], by_item: dict[str, list[Episode]], costs: Costs) -> list[Choice]:
    """One choice per item: of the actions it has episodes of, the one whose group value
    has the best mean over the items with its number of readings; the item's own best
    episode of that action."""
    values = {item.id: action_values(by_item[item.id], item, costs) for item in items}
    sums: dict[tuple[int, Action], list[float]] = defaultdict(list)
    for item in items:
        for action, value in values[item.id].items():
            sums[readings(item), action].append(value)
    means = {key: sum(v) / len(v) for key, v in sums.items()}
    return [best_choice(by_item[item.id], item, costs,
                        {a: means[readings(item), a] for a in values[item.id]}) for item in items]


def select_for_training(choices: list[Choice], per_item: int, seed: int,
                        balanced: bool = True) -> list[Choice]:
    """Up to `per_item` choices per item: cycling over its distinct best actions when
    `balanced`, else drawn uniformly."""
    by_item: dict[str, list[Choice]] = defaultdict(list)
    for choice in choices:
        by_item[choice.item_id].append(choice)
    selected = []
    for item_id, item_choices in by_item.items():
        rng = item_rng(seed, "select", item_id)
        if not balanced:
            selected += rng.sample(item_choices, min(per_item, len(item_choices)))
            continue
        by_action: dict[Action, list[Choice]] = defaultdict(list)
        for choice in item_choices:
            by_action[choice.action].append(choice)
        queues = [rng.sample(group, len(group)) for group in by_action.values()]
        rng.shuffle(queues)
        taken = []
        while len(taken) < per_item and any(queues):
            for queue in queues:
                if queue and len(taken) < per_item:
                    taken.append(queue.pop())
        selected += taken
    return selected


def training_examples(choices: list[Choice], items: dict[str, Item], max_questions: int):
    """(prompt, reply) pairs: each kept episode's assistant turns, prompted with its costs."""
    examples = []
    for choice in choices:
        examples += assistant_examples(choice.episode, choice.costs, items[choice.item_id].documents,
                                       max_questions)
    return examples


def best_action_table(choices: list[Choice]) -> dict[tuple[float, float], dict[str, int]]:
    """For each cost pair, how many items had each best action: what the data teaches."""
    table: dict[tuple[float, float], Counter] = defaultdict(Counter)
    for choice in choices:
        table[(choice.costs.alpha, choice.costs.beta)][choice.action.value] += 1
    return {key: dict(counts) for key, counts in sorted(table.items())}
