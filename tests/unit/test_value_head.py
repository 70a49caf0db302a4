"""The decision by expected value: exact for any costs, monotone in both, and its head's fit."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from askwise.policy import Action, Costs
from askwise.policy.value import (
    ACTIONS,
    OUTPUTS,
    Expected,
    ValueHead,
    decide,
    expected_from_outputs,
    has_value_head,
    state_messages,
)

f1s = st.floats(0, 1)
words = st.floats(0, 60)
costs = st.builds(Costs, alpha=st.floats(0, 2), beta=st.floats(0, 0.1))


@st.composite
def expectations(draw):
    return {Action.ANSWER: Expected(draw(f1s), draw(words), 0.0),
            Action.MULTI_ANSWER: Expected(draw(f1s), draw(words), 0.0),
            Action.CLARIFY: Expected(draw(f1s), draw(words), 1.0)}


def reward(e: Expected, c: Costs) -> float:
    return e.f1 - c.alpha * e.questions - c.beta * e.words


@given(expectations(), costs)
def test_the_decision_takes_the_highest_expected_reward(expected, c):
    chosen = decide(expected, c)
    assert all(reward(expected[chosen], c) >= reward(e, c) - 1e-12 for e in expected.values())


@given(expectations(), costs, st.floats(0, 2))
def test_a_dearer_question_never_turns_a_non_question_into_a_question(expected, c, more):
    dearer = Costs(alpha=min(2.0, c.alpha + more), beta=c.beta)
    if decide(expected, c) is not Action.CLARIFY:
        assert decide(expected, dearer) is not Action.CLARIFY


@given(expectations(), costs, st.floats(0, 0.1))
def test_dearer_words_never_turn_a_shorter_reply_into_a_list(expected, c, more):
    # a list is the wordiest reply (the head's estimates: ~20 words against ~2.5)
    longest = max(e.words for e in expected.values())
    expected[Action.MULTI_ANSWER] = Expected(expected[Action.MULTI_ANSWER].f1, longest + 1, 0.0)
    dearer = Costs(alpha=c.alpha, beta=c.beta + more)
    if decide(expected, c) is not Action.MULTI_ANSWER:
        assert decide(expected, dearer) is not Action.MULTI_ANSWER


@settings(max_examples=30)
@given(st.lists(expectations(), min_size=5, max_size=30))
def test_rates_over_many_requests_follow_both_costs(population):
    alphas, betas = [0.02, 0.05, 0.1, 0.2, 0.5], [0.001, 0.002, 0.005, 0.01, 0.03]
    for expected in population:
        longest = max(e.words for e in expected.values())
        expected[Action.MULTI_ANSWER] = Expected(expected[Action.MULTI_ANSWER].f1, longest + 1, 0.0)

    def rate(action, a, b):
        return sum(decide(e, Costs(alpha=a, beta=b)) is action for e in population)

    for b in betas:
        clarify = [rate(Action.CLARIFY, a, b) for a in alphas]
        assert clarify == sorted(clarify, reverse=True)
    for a in alphas:
        multi = [rate(Action.MULTI_ANSWER, a, b) for b in betas]
        assert multi == sorted(multi, reverse=True)


def test_ties_go_to_the_cheaper_turn():
    same = Expected(0.5, 0.0, 0.0)
    expected = {Action.MULTI_ANSWER: same, Action.CLARIFY: Expected(0.5, 0.0, 1.0), Action.ANSWER: same}
    assert decide(expected, Costs(alpha=0.0, beta=0.0)) is Action.ANSWER
    del expected[Action.ANSWER]
    assert decide(expected, Costs(alpha=0.0, beta=0.0)) is Action.CLARIFY


def test_outputs_become_expectations_in_range_for_the_allowed_actions_only():
    outputs = [1.3, -0.2, 0.6, -1.0, 21.0, 2.5]
    expected = expected_from_outputs(outputs, ACTIONS)
    assert expected[Action.ANSWER] == Expected(1.0, 0.0, 0.0)  # clipped: no action beats F1 1
    assert expected[Action.MULTI_ANSWER] == Expected(0.0, 21.0, 0.0)
    assert expected[Action.CLARIFY] == Expected(0.6, 2.5, 1.0)
    assert set(expected_from_outputs(outputs, (Action.ANSWER, Action.MULTI_ANSWER))) == {
        Action.ANSWER, Action.MULTI_ANSWER}
    with pytest.raises(ValueError):
        expected_from_outputs(outputs[:5], ACTIONS)


def test_the_state_is_read_before_the_costs():
    from askwise.policy import Turn, render_prompt

    cheap = render_prompt([Turn("user", "Who won?")], Costs(alpha=0.01, beta=0.001), (), 1)
    dear = render_prompt([Turn("user", "Who won?")], Costs(alpha=0.5, beta=0.03), (), 1)
    assert cheap != dear and state_messages(cheap) == state_messages(dear)
    assert all("0.5" not in m["content"] for m in state_messages(dear))
    with pytest.raises(ValueError):
        state_messages([{"role": "user", "content": "no costs message"}])


def test_a_head_saves_loads_and_refuses_another_layout(tmp_path):
    weight, bias = torch.randn(len(OUTPUTS), 8), torch.randn(len(OUTPUTS))
    ValueHead(weight, bias).save(tmp_path, items="test")
    assert has_value_head(tmp_path) and not has_value_head(tmp_path / "none")
    head = ValueHead.load(tmp_path)
    state = torch.randn(8)
    assert head.outputs(state) == pytest.approx((weight @ state + bias).tolist(), rel=1e-5)
    assert head.meta["items"] == "test" and head.hidden_size == 8
    (tmp_path / "value_head.json").write_text('{"outputs": ["f1"], "state": "other"}')
    with pytest.raises(ValueError, match="value head"):
        ValueHead.load(tmp_path)


def test_the_ridge_fit_recovers_a_linear_map_and_reports_its_cross_validated_fit():
    from askwise.training.value import fit_head

    generator = torch.Generator().manual_seed(0)
    states = torch.randn(400, 16, generator=generator)
    true_weight = torch.randn(len(OUTPUTS), 16, generator=generator) * 0.1
    true_bias = torch.tensor([0.5, 0.4, 0.6, 2.5, 20.0, 2.5])
    targets = states @ true_weight.T + true_bias + 0.01 * torch.randn(400, len(OUTPUTS), generator=generator)
    grid = [Costs(alpha=a, beta=b) for a in (0.02, 0.1, 0.5) for b in (0.001, 0.01)]
    head, report = fit_head(states, targets, grid)
    assert report["items"] == 400 and report["ridge_strength"] <= 100
    assert all(r > 0.9 for r in report["cv_r2"].values())
    # the strength is the one whose held-out estimates decide best, and they beat the means
    chosen = report["cv_reward_by_strength"][f"{report['ridge_strength']:g}"]
    assert chosen == max(report["cv_reward_by_strength"].values()) > report["reward_of_the_means"]
    state = torch.randn(16, generator=generator)
    expected = (true_weight @ state + true_bias).tolist()
    assert head.outputs(state) == pytest.approx(expected, abs=0.15)  # shrunk a little, as chosen
    # with no signal in the states, the fit falls back to the means
    noise, report = fit_head(torch.randn(400, 16, generator=generator), targets, grid)
    assert max(report["cv_r2"].values()) < 0.1
    assert noise.outputs(torch.zeros(16)) == pytest.approx(targets.mean(0).tolist(), abs=0.1)
    assert math.isfinite(sum(noise.outputs(torch.randn(16, generator=generator))))
