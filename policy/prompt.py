"""The prompt format: what the policy model sees, for training and for serving alike.

`render_prompt` turns (conversation, costs, documents) into chat messages. Every checkpoint
is trained on the text this function produces, so any change to it is a new
`PROMPT_FORMAT_VERSION`, which checkpoints record and the server checks.

Costs enter the prompt only through the `costs` argument, in a short system message of their
own placed last, after the conversation. Two reasons: the numbers sit right before the action
tag the model is about to choose (a 135M model trained on prompt 1, costs inside the long
first system message, learned to ignore them), and every prompt of a turn shares all of its
tokens up to that message whatever the costs, which lets the trainer run the shared part once
for all the cost pairs an episode is relabelled for (finetune.py). User text is stripped of
chat-template control tokens so that it cannot open a forged system turn.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from .actions import Action, format_action, parse_action, parse_interpretations
from .costs import Costs, format_cost

PROMPT_FORMAT_VERSION = "askwise-prompt-2"

Role = Literal["system", "user", "assistant"]

_INSTRUCTIONS = """\
You help a user whose question may be ambiguous. Reply with exactly one action, starting with its tag:
#ANSWER <answer> : answer the most likely meaning, briefly.
#MULTI_ANS : then one line per meaning, "If you mean <meaning>: <answer>".
#CLARIFY <question> : ask one short question to learn what the user means."""

_GROUNDED = "Answer only from the documents. They may not all be relevant."

_SCORE = "Your score is the accuracy of the final answer (0 to 1) minus the costs stated last."

_COSTS = "Costs now: each clarifying question costs {alpha}; each word of the final answer costs {beta}."

_LIMIT = "You have asked {asked} question(s), the most allowed: do not ask another."

# ChatML and similar templates delimit turns with tokens like <|im_start|>. Tokenizers turn
# that text into the real control token, so user text containing it could forge a turn.
_CONTROL_TOKEN = re.compile(r"<\|[A-Za-z0-9_]{1,40}\|>|</?s>")


@dataclass(frozen=True)
class Turn:
    """One message of the conversation. `action` is known for assistant turns we produced."""

    role: Role
    content: str
    action: Action | None = None


@dataclass(frozen=True)
class Document:
    text: str
    title: str = ""


def sanitize(text: str) -> str:
    return _CONTROL_TOKEN.sub("", text)


def assistant_turn_text(turn: Turn) -> str:
    """An earlier assistant turn, written in the format the model produces.

    Clients usually send back only the user-facing text. Without a known action: text that
    already carries a tag is kept; "If you mean X: A" lines were a multi-answer; text ending
    in "?" was a clarifying question; anything else was an answer.
    """
    content = sanitize(turn.content).strip()
    if turn.action is not None:
        return format_action(turn.action, content)
    if parse_action(content).tagged:
        return content
    if parse_interpretations(content)[1]:
        return format_action(Action.MULTI_ANSWER, content)
    return format_action(Action.CLARIFY if content.endswith("?") else Action.ANSWER, content)


def questions_asked(turns: list[Turn] | tuple[Turn, ...]) -> int:
    """Clarifying questions since the last final answer: the current episode's count."""
    asked = 0
    for turn in reversed(turns):
        if turn.role != "assistant":
            continue
        action = turn.action or parse_action(assistant_turn_text(turn)).action
        if action is not Action.CLARIFY:
            break
        asked += 1
    return asked


def allowed_actions(turns: list[Turn] | tuple[Turn, ...], max_questions: int) -> tuple[Action, ...]:
    """All actions, or only the final ones once `max_questions` have been asked."""
    if questions_asked(turns) >= max_questions:
        return (Action.ANSWER, Action.MULTI_ANSWER)
    return tuple(Action)


def render_prompt(
    turns: list[Turn] | tuple[Turn, ...],
    costs: Costs,
    documents: list[Document] | tuple[Document, ...] = (),
    max_questions: int | None = None,
) -> list[dict[str, str]]:
    """Chat messages for the policy model: the system message, the conversation, the costs."""
    system = [_INSTRUCTIONS, _SCORE]
    app_instructions = [sanitize(t.content).strip() for t in turns if t.role == "system"]
    app_instructions = [text for text in app_instructions if text]
    if app_instructions:
        system.append("Instructions from the application:\n" + "\n".join(app_instructions))
    if documents:
        lines = []
        for number, doc in enumerate(documents, 1):
            title = sanitize(doc.title).strip()
            text = " ".join(sanitize(doc.text).split())
            lines.append(f"[{number}] {title}: {text}" if title else f"[{number}] {text}")
        system.append("Documents:\n" + "\n".join(lines) + "\n" + _GROUNDED)
    last = [_COSTS.format(alpha=format_cost(costs.alpha), beta=format_cost(costs.beta))]
    if max_questions is not None:
        asked = questions_asked(turns)
        if asked >= max_questions:
            last.append(_LIMIT.format(asked=asked))

    messages = [{"role": "system", "content": "\n\n".join(system)}]
    for turn in turns:
        if turn.role == "user":
            messages.append({"role": "user", "content": sanitize(turn.content).strip()})
        elif turn.role == "assistant":
            messages.append({"role": "assistant", "content": assistant_turn_text(turn)})
    messages.append({"role": "system", "content": "\n".join(last)})
    return messages
