import pytest

from askwise.policy.costs import Costs
from askwise.policy.reward import Outcome, best_f1, count_words, normalize_answer, reward, token_f1


def test_normalisation_is_squad():
    assert normalize_answer("The  Eiffel-Tower!") == "eiffeltower"
    assert normalize_answer("An apple a day") == "apple day"


def test_token_f1():
    assert token_f1("Paris", "paris.") == 1.0
    assert token_f1("in Paris France", "Paris") == pytest.approx(0.5)
    assert token_f1("London", "Paris") == 0.0
    assert token_f1("", "") == 1.0 and token_f1("the", "Paris") == 0.0


def test_best_f1_takes_the_closest_alias():
    assert best_f1("T. G. Sheppard", ["Mickey Thomas", "T. G. Sheppard"]) == 1.0
    assert best_f1("anything", []) == 0.0


def test_count_words():
    assert count_words("If you mean 2018: France.\nIf you mean 2014: Germany.") == 10
    assert count_words("   ") == 0


def test_reward_prices_questions_and_words():
    costs = Costs(alpha=0.1, beta=0.01)
    assert reward(1.0, 1, 5, costs) == pytest.approx(1.0 - 0.1 - 0.05)
    # One episode re-scored under other costs: the point of relabelling.
    outcome = Outcome(f1=0.8, questions=0, words=30)
    assert outcome.reward(Costs(alpha=0, beta=0)) == pytest.approx(0.8)
    assert outcome.reward(Costs(alpha=0, beta=0.02)) == pytest.approx(0.2)


def test_turn_cost_prices_questions_once_and_answers_by_the_word():
    from askwise.policy.actions import Action
    from askwise.policy.reward import turn_cost

    costs = Costs(alpha=0.3, beta=0.01)
    assert turn_cost(Action.CLARIFY, "Which year do you mean?", costs) == 0.3
    assert turn_cost(Action.ANSWER, "France won in 2018", costs) == pytest.approx(0.04)
