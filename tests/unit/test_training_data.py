import random

from askwise.policy import Costs, Document, Turn, render_prompt
from askwise.training.data import (
    EARLY_DEV_ITEMS,
    MAX_DOCUMENTS,
    MAX_INTERPRETATIONS,
    MIN_DOCUMENTS,
    Interpretation,
    Item,
    dev_slice,
    grounded_documents,
    item_rng,
    load_ambigqa,
    sample_intent,
)
from askwise.training.leakcheck import auc, leak_report, oriented
from askwise.training.pacific import load_pacific, pacific_items
from askwise.training.passages import contains_query, statement


def test_ambigqa_splits_load_with_interpretations_and_gold_answers():
    train = load_ambigqa("train", grounded=False)
    dev = load_ambigqa("dev", grounded=False)
    assert len(train) > 9000 and len(dev) > 1900  # a few items have more readings than allowed
    for item in train[:500]:
        assert 1 <= len(item.interpretations) <= MAX_INTERPRETATIONS
        assert abs(sum(r.probability for r in item.interpretations) - 1) < 1e-9
        assert all(r.answers and r.question for r in item.interpretations)
        assert all(":" not in r.question and "|" not in r.question for r in item.interpretations)
    first = train[0]  # "When did the simpsons first air on television?": two readings
    assert first.ambiguous and {a for r in first.interpretations for a in r.answers} >= {
        "April 19, 1987", "December 17, 1989"}


def test_single_answer_items_keep_every_annotators_aliases():
    dev = load_ambigqa("dev", grounded=False)
    single = [i for i in dev if not i.ambiguous]
    assert single and all(i.interpretations[0].question == i.query for i in single)
    assert any(len(i.interpretations[0].answers) > 1 for i in single)


def test_grounded_documents_hold_every_reading_and_hide_the_count():
    items = load_ambigqa("train", limit=300)
    counts = {}
    for item in items:
        texts = " ".join(d.text for d in item.documents)
        for reading in item.interpretations:
            assert reading.answers[0].strip().rstrip(".") in texts
        assert len(item.documents) >= max(MIN_DOCUMENTS, len(item.interpretations))
        assert len(item.documents) <= max(MAX_DOCUMENTS, len(item.interpretations))
        counts.setdefault(item.ambiguous, set()).add(len(item.documents))
    # The same document counts occur with and without ambiguity.
    assert counts[True] & counts[False] == {4, 5, 6, 7}


def test_documents_are_statements_not_questions_and_rarely_repeat_the_query():
    repeats = total = 0
    for item in load_ambigqa("dev", limit=300):
        for doc in item.documents:
            assert not doc.text.endswith("?") and "Q:" not in doc.text and "The answer is" not in doc.text
            assert all(r.question not in doc.text for r in item.interpretations)
            repeats += contains_query(doc.text, item.query)
            total += 1
    # a cloze query ("... desert and?") or one with no question word and no phrase to move is
    # held by its statement, ambiguous or not; the leak check measures what that gives away
    assert repeats / total < 0.03


def test_statements_put_the_answer_in_the_question_words_place():
    rng = random.Random(0)
    said = {statement("Who won the world cup in 2018?", "France", rng) for _ in range(40)}
    assert said == {"France won the world cup in 2018.", "In 2018, France won the world cup."}
    assert statement("How many episodes are in season 2 of chesapeake shores?", "10", rng) == \
        "10 episodes are in season 2 of chesapeake shores."
    when = statement("When was the first remote control tv invented?", "1950", random.Random(3))
    assert "1950" in when and "was invented" in when and "?" not in when


def test_no_surface_rule_tells_ambiguous_from_single_reading_items():
    """The leak check: exact query match (with or without the question word) and the document
    count stay near chance on both dev slices; the topic signal a retriever gives stays."""
    for split in ("dev-selection", "dev-test"):
        report = leak_report(load_ambigqa(split))
        assert report["string_rules"]["exact_query_match"] < 0.6
        assert report["string_rules"]["exact_query_match_without_question_word"] < 0.6
        assert report["string_rules"]["documents"] < 0.6
        assert report["topic_rules"]["documents_about_query"] > 0.8


def test_the_old_construction_would_fail_the_leak_check():
    """The check can fail: documents that repeat a single-reading query word for word (as
    "Q: <question> A: <answer>" facts did) separate the items almost perfectly."""
    items = load_ambigqa("dev-selection", limit=200, grounded=False)
    leaky = [Item(i.id, i.query, i.interpretations,
                  tuple(Document(f"Q: {r.question} A: {r.answers[0]}.") for r in i.interpretations))
             for i in items]
    assert leak_report(leaky)["string_rules"]["exact_query_match"] > 0.8


def test_auc_counts_ties_as_half_and_orients_either_way():
    assert auc([1, 1, 0, 0], [True, True, False, False]) == 1.0
    assert auc([1, 0], [True, True]) is None
    assert auc([1, 1], [True, False]) == 0.5
    assert oriented(auc([0, 0, 1, 1], [True, True, False, False])) == 1.0


def test_dev_slices_are_disjoint_fixed_by_id_and_cover_dev():
    selection = load_ambigqa("dev-selection", grounded=False)
    test = load_ambigqa("dev-test", grounded=False)
    early = load_ambigqa("dev-test-early", grounded=False)
    dev = load_ambigqa("dev", grounded=False)
    assert {i.id for i in selection}.isdisjoint({i.id for i in test} | {i.id for i in early})
    assert {i.id for i in test}.isdisjoint({i.id for i in early})
    assert {i.id for i in selection} | {i.id for i in test} | {i.id for i in early} == {i.id for i in dev}
    assert 0.45 < len(selection) / len(dev) < 0.55
    assert all(dev_slice(i.id) == "dev-selection" for i in selection)
    # the dev-test items among the first dev items (which chose earlier checkpoints) stand apart
    first = {i.id for i in dev[:EARLY_DEV_ITEMS]}
    assert {i.id for i in early} == {i.id for i in test + early if i.id in first}
    assert len(test) >= 300 and not first & {i.id for i in test}
    # a limit takes the first items of the slice, never items of the other one
    assert [i.id for i in load_ambigqa("dev-test", limit=30, grounded=False)] == [i.id for i in test[:30]]
    # an item's documents do not depend on the slice it is loaded through
    by_id = {i.id: i for i in load_ambigqa("dev", limit=60)}
    for item in load_ambigqa("dev-selection", limit=20):
        if item.id in by_id:
            assert item.documents == by_id[item.id].documents


def test_distractors_come_from_the_items_own_slice():
    pool = load_ambigqa("dev", grounded=False)
    for split in ("dev-test", "dev-selection"):
        half = tuple(i for i in pool if dev_slice(i.id) == dev_slice(load_ambigqa(split, limit=1)[0].id))
        for item in load_ambigqa(split, limit=5):
            bare = next(i for i in pool if i.id == item.id)
            assert item.documents == grounded_documents(bare, half).documents
            assert item.documents != grounded_documents(bare, pool).documents


def test_documents_are_stable_per_seed_and_differ_across_seeds():
    a = load_ambigqa("dev", limit=20, seed=0)
    b = load_ambigqa("dev", limit=20, seed=0)
    c = load_ambigqa("dev", limit=20, seed=1)
    assert a == b
    assert [i.documents for i in a] != [i.documents for i in c]


def test_intents_follow_the_probabilities():
    item = Item("x", "q?", (Interpretation("a?", ("A",), 0.75), Interpretation("b?", ("B",), 0.25)))
    rng = item_rng(0, "t")
    draws = [sample_intent(item, rng) for _ in range(4000)]
    assert 0.70 < draws.count(0) / len(draws) < 0.80


def test_the_prompt_never_depends_on_the_intent():
    """The assistant's first prompt is the same whichever reading the user means."""
    pool = load_ambigqa("train", limit=50, grounded=False)
    for item in pool:
        grounded = grounded_documents(item, pool)
        prompts = {str(render_prompt([Turn("user", grounded.query)], Costs(alpha=0.1, beta=0.01),
                                     grounded.documents)) for _ in item.interpretations}
        assert len(prompts) == 1


def test_pacific_items_pair_a_clarification_with_its_resolution():
    unclear, clear = pacific_items()
    assert len(unclear) > 200 and len(clear) > 500
    first = unclear[0]
    assert first.query == "What is the company paid on a contract?"
    assert first.interpretations[0].question == "What is the company paid on a cost-plus type contract?"
    assert first.documents[0].title == "Table"
    mixed = load_pacific(limit=10)
    assert [m in unclear for m in mixed] == [True, False] * 5


def test_train_flags_take_lists_of_choices_and_refuse_others():
    import argparse

    import pytest

    from askwise.options import add_model_arguments, given_arguments
    from askwise.training.config import TrainConfig

    parser = argparse.ArgumentParser()
    add_model_arguments(parser, TrainConfig)
    args = parser.parse_args(["--bootstrap-actions", "multi_answer", "clarify", "--iterations", "0"])
    config = TrainConfig(**given_arguments(args, TrainConfig))
    assert config.bootstrap_actions == ["multi_answer", "clarify"] and config.iterations == 0
    with pytest.raises(SystemExit):
        parser.parse_args(["--bootstrap-actions", "shout"])
    with pytest.raises(ValueError, match="train nothing"):
        TrainConfig(iterations=0, bootstrap_items=0, value_items=0)
    # a value head alone describes a policy that exists already
    with pytest.raises(ValueError, match="init-adapter"):
        TrainConfig(iterations=0, bootstrap_items=0)
    alone = TrainConfig(iterations=0, bootstrap_items=0, init_adapter="a", value_items=10, value_start=2000)
    assert alone.value_range() == (2000, 2010)
    assert TrainConfig(train_items=5, bootstrap_items=3, value_items=4).value_range() == (8, 12)


def test_eval_refuses_an_unknown_slice_in_one_line():
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "askwise", "eval", "--split", "dev-tset", "--items", "1"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "unknown AmbigQA split 'dev-tset'" in result.stderr and "Traceback" not in result.stderr


def test_a_pacific_report_never_names_an_ambigqa_slice():
    from askwise.training.evaluate import EvalConfig

    assert EvalConfig(dataset="pacific").split == "validation"
    assert EvalConfig().split == "dev-selection"
