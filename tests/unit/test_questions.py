"""Which clarifying questions offer one option twice or options the passages do not ground,
and which draw is asked instead (policy/questions.py)."""

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from askwise.policy.actions import parse_action
from askwise.policy.engines.base import Completion, SamplingParams
from askwise.policy.prompt import Document
from askwise.policy.questions import (
    REDRAW_MAX_TOKENS,
    Sources,
    needs_redraw,
    options_repeat,
    redraw_question,
)

# Written by the shipped policy on dev-selection and dev-test.
REPEATING = [
    "Do you mean in the heart or in the heart?",
    "Do you mean 2003, 2014 or 2014?",
    "Do you mean on October 2, 1975 or on October 2, 1975?",
    "Do you mean at Wembley Stadium, at Wembley Stadium, at John F. Kennedy stadium or at John F. Kennedy stadium?",
    "Do you mean 1989, 1989, 1989, 1989, 1989, 1",
    "Do you mean 1986 FIFA World Cup or 1986 FIFA World Cup Cup?",
    "Is it the film or the film?",
]
DISTINCT = [
    "Do you mean the 2016 Copa América or the 2015 Copa América?",
    "Do you mean 11 or 18 May 1974?",
    "Do you mean on October 2, 1975 or on October 3, 1975?",
    "Do you mean the World Cup or the Women's World Cup?",
    "Do you mean 2018, 1962 or 1953?",
    "Do you mean the Confederate Army of the Potomac or the Union Army of the Potomac?",
    "Which year do you mean?",
    "Do you mean the song?",
]


@pytest.mark.parametrize("question", REPEATING)
def test_repeating_options_are_found(question):
    assert options_repeat(question)


@pytest.mark.parametrize("question", DISTINCT)
def test_distinct_options_pass(question):
    assert not options_repeat(question)


words = st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=2, max_size=8).filter(
    lambda w: w not in {"or", "the", "an", "of", "in", "on", "at", "to", "for", "by", "from",
                        "with", "and", "as"})


@given(st.lists(words, min_size=1, max_size=4))
def test_any_option_offered_twice_repeats(option_words):
    option = " ".join(option_words)
    assert options_repeat(f"Do you mean {option} or {option}?")


def completed(text: str, finish_reason: str = "stop"):
    return parse_action(text), Completion(text, 10, 10, finish_reason)


def test_only_questions_are_redrawn():
    assert needs_redraw(*completed("#CLARIFY Do you mean 2014 or 2014?"))
    assert not needs_redraw(*completed("#ANSWER 2014 or 2014"))
    assert not needs_redraw(*completed("#CLARIFY Do you mean 2014 or 2018?"))


def test_a_question_cut_off_at_the_token_limit_is_redrawn():
    # Seen on dev-test: an enumeration whose options all differ, still going at the limit.
    looping = "#CLARIFY Do you mean 1985, 1986, 1987, 1988, 1989, 1990"
    assert not options_repeat(looping)
    assert needs_redraw(*completed(looping, "length"))
    assert not needs_redraw(*completed(looping.replace(", 1986, 1987, 1988, 1989,", " or") + "?"))
    assert not needs_redraw(*completed("#ANSWER 1985, 1986, 1987", "length"))


class LoopingDraws:
    """Draw k answers after k earlier draws: draw 0 repeats an option, draw 1 is whole, and
    every later draw loops forever (as one cut off only at a far token limit would)."""

    def __init__(self):
        self.cancelled = 0

    async def complete(self, messages, params, model=None):
        draw = (params.seed - 1) // 104729 - 1
        if draw == 0:
            return Completion("#CLARIFY Do you mean 2014 or 2014?", 3, 6, "stop")
        if draw == 1:
            return Completion("#CLARIFY Do you mean 2014 or 2018?", 3, 6, "stop")
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise


def test_the_first_askable_draw_is_asked_without_waiting_for_the_rest():
    engine = LoopingDraws()
    redraw = asyncio.run(asyncio.wait_for(
        redraw_question(engine, [], SamplingParams(seed=1), draws=8), timeout=10))
    assert redraw.parsed.message == "Do you mean 2014 or 2018?"
    assert redraw.completion_tokens == 12  # the two draws that finished
    assert engine.cancelled == 6


# Passages of the grounded setting's shape: the reading's statement among other items' ones.
LAKE = Sources("Where was 'top of the lake' filmed?", (
    Document("In Sydney, Australia, season 2 of 'top of the lake' was filmed."),
    Document("Riverdale season one have 13 episodes. Glenorchy is where season 1 of 'top of "
             "the lake' was filmed almost entirely."),
    Document("For the most super bowl losses, Don Shula has the record."),
))


@pytest.mark.parametrize(("question", "grounded"), [
    ("Do you mean season 1 or season 2?", 2),
    ("Do you mean Sydney or Glenorchy?", 2),
    ("Do you mean Sydney, Glenorchy or Riverdale?", 2),  # Riverdale's sentence is off topic
    ("Do you mean the film or the show?", 0),
    ("Do you mean Sydney or Australia?", 1),  # two options from one sentence name one reading
    ("Do you mean top of the lake?", 0),  # the query's own words name nothing
])
def test_options_are_grounded_each_in_a_sentence_about_the_query(question, grounded):
    assert LAKE.groundable and LAKE.grounded(question) == grounded


def test_each_option_gets_a_sentence_of_its_own():
    # "season" fits both sentences: it takes the one "Sydney" does not need.
    assert LAKE.grounded("Do you mean season or Sydney?") == 2


def test_grounding_redraws_only_where_the_passages_tell_readings_apart():
    one_sentence = Sources("Where was 'top of the lake' filmed?", LAKE.documents[:1])
    question = completed("#CLARIFY Do you mean the film or the show?")
    assert needs_redraw(*question, LAKE)
    assert not one_sentence.groundable and not needs_redraw(*question, one_sentence)
    assert not needs_redraw(*question)
    assert not needs_redraw(*completed("#CLARIFY Do you mean season 1 or season 2?"), LAKE)


class ScriptedDraws:
    """Draw k (seeded 1 + 104729 k) returns script[k - 1]."""

    def __init__(self, script):
        self.script = script

    async def complete(self, messages, params, model=None):
        return Completion(self.script[(params.seed - 1) // 104729 - 1], 3, 6, "stop")


def redraw(script, to_beat):
    return asyncio.run(redraw_question(ScriptedDraws(script), [], SamplingParams(seed=1),
                                       draws=len(script), sources=LAKE, to_beat=to_beat))


def test_the_first_draw_grounding_two_options_is_asked():
    script = ["#CLARIFY Do you mean Sydney?", "#CLARIFY Do you mean Sydney or Glenorchy?",
              "#CLARIFY Do you mean season 1 or season 2?"]
    assert redraw(script, 0).parsed.message == "Do you mean Sydney or Glenorchy?"


def test_without_a_draw_grounding_two_the_best_one_beats_the_question_in_hand():
    script = ["#CLARIFY Do you mean the show?", "#CLARIFY Do you mean Sydney?",
              "#CLARIFY Do you mean Glenorchy?"]
    assert redraw(script, 0).parsed.message == "Do you mean Sydney?"
    assert redraw(script, 1).parsed is None  # no draw grounds more than the original
    assert redraw(script[:1], -1).parsed.message == "Do you mean the show?"  # askable beats -1


class RecordingDraws:
    def __init__(self):
        self.limits = []

    async def complete(self, messages, params, model=None):
        self.limits.append(params.max_tokens)
        return Completion("#CLARIFY Do you mean 2014 or 2018?", 3, 6, "stop")


def test_draws_stop_near_a_question_length():
    engine = RecordingDraws()
    asyncio.run(redraw_question(engine, [], SamplingParams(max_tokens=200, seed=1), draws=2))
    assert engine.limits and set(engine.limits) == {REDRAW_MAX_TOKENS}
    engine = RecordingDraws()
    asyncio.run(redraw_question(engine, [], SamplingParams(max_tokens=40, seed=1), draws=2))
    assert set(engine.limits) == {40}  # a request's own lower limit holds
