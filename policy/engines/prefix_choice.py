"""How likely the model found each allowed prefix, at the point where a reply picks one.

A reply constrained to start with one of several prefixes ("#ANSWER ", "#CLARIFY ", ...)
usually runs a few shared tokens ("#") and then one token decides. `PrefixChoice` is fed
each step's candidate tokens with the model's own probabilities (before any constraint or
temperature) and the token taken. While the taken token is shared by every prefix still
possible, the path goes on; a candidate that leads to only some of them credits them with
the path's probability times its own (split evenly when it fits several). At the first step
whose taken token decides, the credits, renormalised over the prefixes, are the result.

Both engines use it: the in-process one with the whole vocabulary at each step, the OpenAI
one with the `top_logprobs` a server returns, where a prefix none of whose tokens made the
top list gets 0.
"""

from __future__ import annotations

from collections.abc import Iterable


def _fits(rest: str, piece: str) -> bool:
    """Whether a token's text can continue a prefix whose unwritten part is `rest`."""
    return bool(piece) and (rest.startswith(piece) or piece.startswith(rest))


class PrefixChoice:
    def __init__(self, prefixes: Iterable[str]):
        self.prefixes = tuple(prefixes)
        self._credit = dict.fromkeys(self.prefixes, 0.0)
        self._path = 1.0
        self.result: dict[str, float] | None = None
        self.done = len(self.prefixes) < 2
        if len(self.prefixes) == 1:
            self.result = {self.prefixes[0]: 1.0}

    def step(self, text: str, candidates: Iterable[tuple[str, float]], taken: tuple[str, float]) -> None:
        """One decoding step after `text`: candidate (token text, probability) pairs, and the
        one taken."""
        if self.done:
            return
        open_ = [p for p in self.prefixes if p.startswith(text) and len(p) > len(text)]
        if len(open_) < 2:  # nothing left to decide, or the text left the prefixes
            self._finish(open_)
            return
        for piece, probability in candidates:
            fits = [p for p in open_ if _fits(p[len(text):], piece)]
            if fits and len(fits) < len(open_):
                for prefix in fits:
                    self._credit[prefix] += self._path * probability / len(fits)
        piece, probability = taken
        if len([p for p in open_ if _fits(p[len(text):], piece)]) == len(open_):
            self._path *= probability
        else:
            self._finish(open_)

    def _finish(self, open_: list[str]) -> None:
        self.done = True
        total = sum(self._credit.values())
        if total > 0:
            self.result = {p: c / total for p, c in self._credit.items()}
        elif len(open_) == 1:
            self.result = {p: float(p == open_[0]) for p in self.prefixes}
