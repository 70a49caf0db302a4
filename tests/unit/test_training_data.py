from askwise.policy import Costs, Turn, render_prompt
from askwise.training.data import (
    MAX_DOCUMENTS,
    MAX_INTERPRETATIONS,
    MIN_DOCUMENTS,
    Interpretation,
    Item,
    grounded_documents,
    item_rng,
    load_ambigqa,
    sample_intent,
)
from askwise.training.pacific import load_pacific, pacific_items


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
            assert reading.answers[0] in texts
        assert len(item.documents) >= max(MIN_DOCUMENTS, len(item.interpretations))
        assert len(item.documents) <= max(MAX_DOCUMENTS, len(item.interpretations))
        counts.setdefault(item.ambiguous, set()).add(len(item.documents))
    # The same document counts occur with and without ambiguity.
    assert counts[True] & counts[False] == {4, 5, 6}


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
        TrainConfig(iterations=0, bootstrap_items=0)
