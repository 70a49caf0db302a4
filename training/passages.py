"""Documents for the grounded setting that read like retrieved passages and hide the ambiguity.

Every reading of every item becomes a document the same way, whether the item has one reading
or six: its disambiguated question and first gold answer are rewritten as a statement
(`statement`: "Who won the world cup in 2018?" + "France" -> "In 2018, France won the world
cup."), and the statement sits in a short passage among one or two statements from other
items (noise a retriever also returns), in a random position. Distractor passages, built the
same way from other items, bring the count to 4-7. Nothing about the surface says how many
readings the query has: no document repeats the query (the answer takes the question word's
place, and phrases move), no document is a question, and the count is drawn independently of
the readings where it can be. What is left is the signal a real retriever gives: how many
passages are about the query's topic (`leak_report` measures both kinds).

`statement` is a handful of rules over the question's first words (who/what/which, when,
where, how many, how + adjective, why, in what/which), with a fallback for the rest. It does
not parse: some sentences read awkwardly ("In 1941, the us join ww2."), which real passages
also do often enough; none is a question with its answer attached.
"""

from __future__ import annotations

import random
import re

from askwise.policy import normalize_answer

# auxiliaries that invert with the subject in a question
_BE_HAVE = {"is", "was", "are", "were", "has", "have", "had"}
_DO = {"do", "does", "did"}
_MODAL = {"will", "can", "could", "would", "should", "shall", "may", "might", "must"}
_AUX = _BE_HAVE | _DO | _MODAL
# participles a passive or perfect question ends on that do not end in -ed
_PARTICIPLES = set("""made built held born written won sung taken given found known shot set done seen begun
sold shown drawn grown thrown run brought bought caught taught thought fought told left kept lost
meant paid put read sent spent stood struck hung beaten broken chosen driven eaten fallen forgotten
frozen hidden ridden risen spoken stolen sworn torn worn woken become come gone split cut hit laid
led fed felt heard hurt let lit met quit shut sung swum won wound""".split())
_PREPOSITIONS = {"in", "on", "at", "during", "for", "from", "since", "after", "before", "by"}

# a date with its day ("August 19, 1964", "19 August 1964") takes "on"; years and places "in"
MOVE_PHRASE = 0.8  # how often a statement's last prepositional phrase moves to the front
_DAY = re.compile(r"\b\d{1,2},? \d{4}\b|\b\d{1,2} [A-Z][a-z]+ \d{4}\b")


def _words(question: str) -> list[str]:
    return question.strip().rstrip("?").replace("’", "'").split()


def _capitalise(text: str) -> str:
    text = " ".join(text.split())
    return text[:1].upper() + text[1:] if text else text


def _is_participle(word: str) -> bool:
    w = word.lower().strip(",;")
    return (w.endswith("ed") and len(w) > 3) or w in _PARTICIPLES


def _declarative(aux: str, rest: list[str]) -> list[str]:
    """`rest` (what follows an inverted auxiliary) put back in statement order: a be/have
    auxiliary goes before the participle ("the tv was invented") or, for a copula, after the
    subject, taken as the whole rest ("where the tower is"); do and modals are dropped."""
    aux = aux.lower()
    if aux in _BE_HAVE:
        for k in range(1, len(rest)):
            if _is_participle(rest[k]):
                return rest[:k] + [aux] + rest[k:]
        return rest + [aux]
    return list(rest)


def _front_phrase(clause: list[str]) -> list[str] | None:
    """The clause with its last prepositional phrase moved to the front, or None."""
    for k in range(len(clause) - 1, 0, -1):
        if clause[k].lower() in _PREPOSITIONS and k < len(clause) - 1:
            return clause[k:] + [","] + clause[:k]
    return None


def _join(words: list[str]) -> str:
    return " ".join(words).replace(" ,", ",")


def statement(question: str, answer: str, rng: random.Random) -> str:
    """`question` and its `answer` as one declarative sentence (see the module docstring).
    The answer keeps its own spelling, even at the start of the sentence."""
    answer = answer.strip().rstrip(".")
    text = _statement(question, answer, rng)
    if text[:len(answer)].lower() == answer.lower():
        text = answer + text[len(answer):]
    return text


def _statement(question: str, answer: str, rng: random.Random) -> str:
    words = _words(question)
    lower = [w.lower() for w in words]
    if not words:
        return _capitalise(answer) + "."

    def clause_after(k: int) -> list[str] | None:
        """Statement order of what follows an auxiliary at k, or None when k is no auxiliary."""
        if k < len(words) and lower[k] in _AUX:
            return _declarative(lower[k], words[k + 1:])
        return None

    def place(clause: list[str], tail: list[str]) -> str:
        # "In 2018, France won the world cup" and "France won the world cup in 2018" both
        # occur in passages; moving the phrase also keeps the query from reading verbatim.
        fronted = _front_phrase(clause) if rng.random() < MOVE_PHRASE else None
        if fronted is not None:
            return _capitalise(_join(tail + fronted if tail else fronted)) + "."
        return _capitalise(_join(clause + tail)) + "."

    head = lower[0]
    if head in ("in", "on", "at", "during") and len(words) > 2 and lower[1] in ("what", "which"):
        # "In what year did X ..." -> "In 1999, X ..."
        clause = clause_after(3) or words[3:]
        return _capitalise(_join([words[0], answer, ","] + clause)) + "."
    if head in ("who", "whom", "what", "which") and len(words) > 1:
        if lower[1] in _DO | _MODAL or (lower[1] in _BE_HAVE and head in ("what", "which") and
                                         len(words) > 2 and _is_participle(words[-1])):
            # an object question: "who did X marry" -> "X married ..." cannot be built without
            # a verb lexicon, so the answer is stated with the clause as its description
            clause = _declarative(lower[1], words[2:])
            frames = ["{a} is {wh} {c}.", "{C}: that is {a}."]
            frame = rng.choice(frames)
            return _capitalise(frame.format(a=answer, wh=head, c=_join(clause), C=_join(clause)))
        if head in ("what", "which") and lower[1] not in _AUX:
            # "which actor played X" -> "X was played by ..."-style is out of reach; the noun
            # becomes an apposition: "Tom Hanks, the actor, played X."
            clause = words[2:]
            if rng.random() < 0.5:
                return place([answer] + clause, [])
            return _capitalise(_join([answer, "is the", words[1], "that"] + clause)) + "."
        if lower[1] in _BE_HAVE and rng.random() < 0.4:
            # "who is the prime minister" -> "The prime minister ... is Theresa May."
            return _capitalise(_join(words[2:] + [lower[1], answer])) + "."
        return place([answer] + words[1:], [])
    if head in ("when", "where") and len(words) > 2:
        clause = clause_after(1) or words[1:]
        prep = "on" if head == "when" and _DAY.search(answer) else "in"
        if rng.random() < 0.25:
            return _capitalise(_join([answer, "is", head] + clause)) + "."
        if rng.random() < 0.5:
            return _capitalise(_join([prep, answer, ","] + clause)) + "."
        return place(clause + [prep, answer], [])
    if head == "how" and len(words) > 2:
        if lower[1] in ("many", "much"):
            # "how many episodes are in X" -> "10 episodes are in X"
            k = next((i for i in range(2, len(words)) if lower[i] in _AUX), None)
            if k is None:
                return _capitalise(_join([answer] + words[2:])) + "."
            noun, clause = words[2:k], clause_after(k) or []
            if lower[k] in _BE_HAVE and not any(_is_participle(w) for w in words[k + 1:]):
                return _capitalise(_join([answer] + noun + [lower[k]] + words[k + 1:])) + "."
            return _capitalise(_join(clause + [answer] + noun)) + "."
        clause = clause_after(2) or words[2:]
        return _capitalise(_join([answer, "is how", words[1]] + clause)) + "."
    if head == "why" and len(words) > 2:
        clause = clause_after(1) or words[1:]
        return _capitalise(_join(clause + ["because of", answer])) + "."
    inner = next((k for k in range(1, len(words)) if lower[k] in ("who", "what", "which")), None)
    if inner is not None and inner + 1 < len(words) and lower[inner + 1] not in _DO | _MODAL:
        # "According to the epic who built the palace" -> "According to the epic Maya built the palace"
        return _capitalise(_join(words[:inner] + [answer] + words[inner + 1:])) + "."
    # No question word to replace ("the biggest state in the us"): the answer names it, with
    # the phrase moved where there is one ("In the us, the biggest state is Alaska").
    fronted = _front_phrase(words)
    if fronted is not None:
        return _capitalise(_join(fronted + ["is", answer])) + "."
    return _capitalise(_join([answer, "is"] + words)) + "."


def passage(sentence: str, noise: list[str], rng: random.Random) -> str:
    """`sentence` among `noise` sentences, at a random position."""
    parts = list(noise)
    parts.insert(rng.randrange(len(parts) + 1), sentence)
    return " ".join(parts)


def contains_query(document: str, query: str, skip_first: bool = False) -> bool:
    """Whether `document` holds the query word for word (normalised; optionally without the
    query's first word, the question word the statement replaces)."""
    words = normalize_answer(query).split()
    if skip_first:
        words = words[1:]
    return bool(words) and f" {' '.join(words)} " in f" {normalize_answer(document)} "
