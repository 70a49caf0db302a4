"""The literal user answers only what the assistant's question asks."""

import asyncio

from askwise.training.data import Interpretation, Item, grounded_documents, load_ambigqa
from askwise.training.simulator import (
    LiteralSimulator,
    ReferenceSimulator,
    literal_reply,
    named_readings,
    reading_words,
)

WORLD_CUP = Item("wc", "Who won the world cup?", (
    Interpretation("Who won the 2018 world cup?", ("France",), 0.5),
    Interpretation("Who won the 2014 world cup?", ("Germany",), 0.5)))
STORE = Item("store", "When does the store close?", (
    Interpretation("When does the Main Street store close?", ("9 pm",), 0.5),
    Interpretation("When does the airport store close?", ("midnight",), 0.5),
    Interpretation("When does the online store close for orders?", ("never",), 0.0)))


def reply(item, intent, question):
    return asyncio.run(LiteralSimulator().reply(item, intent, question))


def test_a_question_naming_the_readings_gets_what_distinguishes_the_intent():
    assert reading_words(WORLD_CUP) == [["2018"], ["2014"]]
    assert reply(WORLD_CUP, 0, "The 2018 or the 2014 World Cup?") == "2018"
    assert reply(WORLD_CUP, 1, "The 2018 or the 2014 World Cup?") == "2014"
    assert reply(STORE, 1, "Do you mean the Main Street store or the airport store?") == "airport"


def test_a_question_naming_only_other_readings_gets_a_correction():
    assert reply(WORLD_CUP, 1, "Do you mean the 2018 World Cup?") == "No, 2014"
    assert reply(STORE, 2, "The Main Street store or the airport one?") == "No, online orders"


def test_a_question_that_names_nothing_gets_nothing_new():
    for question in ("What do you mean?", "Can you be more specific?", "What exactly would you like to know?"):
        assert named_readings(WORLD_CUP, question) == set()
        text = reply(WORLD_CUP, 0, question)
        assert text == "I mean what I asked: Who won the world cup?"
        assert "2018" not in text


def test_a_single_reading_item_has_nothing_to_name():
    item = Item("one", "Who wrote Hamlet?", (Interpretation("Who wrote Hamlet?", ("Shakespeare",), 1.0),))
    assert reading_words(item) == [[]]
    assert reply(item, 0, "The play or the film?") == "I mean what I asked: Who wrote Hamlet?"


def test_replies_never_copy_the_intents_question_or_a_document():
    """Over real items and many kinds of question, the reply is never the reading's question
    (what the reference user says) and never a sentence of the request's documents."""
    items = [i for i in load_ambigqa("dev-selection", limit=120) if i.ambiguous]
    assert len(items) > 40
    for item in items:
        words = reading_words(item)
        sentences = {s.strip().rstrip(".") for d in item.documents for s in d.text.split(". ")}
        questions = ["What do you mean?", item.query,
                     "Do you mean " + " or ".join(" ".join(w) for w in words if w) + "?",
                     " ".join(d.text for d in item.documents) + "?"]
        for intent, reading in enumerate(item.interpretations):
            for question in questions:
                text = literal_reply(item, intent, question)
                assert text != reading.question and text.rstrip(".") not in sentences
                assert len(text.split()) <= max(12, len(item.query.split()) + 6)


def test_a_question_nobody_reads_as_one_earns_nothing():
    item = grounded_documents(WORLD_CUP, load_ambigqa("dev", limit=50, grounded=False))
    restated = "I mean what I asked: Who won the world cup?"
    # a recital of the documents names both readings somewhere, and nobody parses it
    recital = "Which of these: " + " ".join(d.text for d in item.documents) + " 2018 or 2014?"
    assert reply(item, 0, recital) == restated
    assert reply(item, 0, "2018 or 2014?") == "2018"
    # more than four options, or no question at all, is the same
    assert reply(item, 0, "Do you mean 2002, 2006, 2010, 2014 or 2018?") == restated
    assert reply(item, 0, "Do you mean 2010, 2014 or 2018?") == "2018"
    assert reply(item, 0, "Tell me if you mean 2018 or 2014.") == restated
    # and the naming measure reads it the same way
    assert named_readings(item, recital) == set()
    assert named_readings(item, "2018 or 2014?") == {0, 1}


def test_the_reference_user_still_hands_over_its_intent():
    sim = ReferenceSimulator()
    assert asyncio.run(sim.reply(WORLD_CUP, 0, "What do you mean?")) == "Who won the 2018 world cup?"


def test_the_literal_user_picks_a_list_line_by_its_label():
    from askwise.policy import Interpretation as Reading

    lines = (Reading("the 2014 one", "Germany"), Reading("the 2018 one", "France"))
    assert asyncio.run(LiteralSimulator().pick(WORLD_CUP, 0, lines, "")) == "France"
