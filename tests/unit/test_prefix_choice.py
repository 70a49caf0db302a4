"""Each allowed prefix's probability at the point where a constrained reply picks one."""

import pytest

from askwise.policy.engines.prefix_choice import PrefixChoice

TAGS = ("#ANSWER ", "#CLARIFY ", "#MULTI_ANS\nIf you mean ")


def test_the_deciding_step_gives_the_tags_their_share():
    choice = PrefixChoice(TAGS)
    choice.step("", [("#", 0.9), ("#C", 0.01)], taken=("#", 0.9))  # shared: the path goes on
    assert not choice.done
    choice.step("#", [("ANSWER", 0.5), ("CL", 0.3), ("MULTI", 0.1), ("A", 0.05)], taken=("ANSWER", 0.5))
    assert choice.done
    # "#C" at the first step counts for #CLARIFY with the path's probability (1.0) times its own
    credit = {"#ANSWER ": 0.9 * 0.55, "#CLARIFY ": 0.01 + 0.9 * 0.3, "#MULTI_ANS\nIf you mean ": 0.9 * 0.1}
    total = sum(credit.values())
    assert choice.result == pytest.approx({tag: c / total for tag, c in credit.items()})
    choice.step("#ANSWER", [(" Paris", 1.0)], taken=(" Paris", 1.0))  # later steps change nothing
    assert choice.result == pytest.approx({tag: c / total for tag, c in credit.items()})


def test_a_tag_outside_the_candidates_gets_zero():
    choice = PrefixChoice(TAGS)
    choice.step("#", [("CL", 0.6), ("ANSWER", 0.2)], taken=("CL", 0.6))
    assert choice.result == pytest.approx({"#ANSWER ": 0.25, "#CLARIFY ": 0.75, "#MULTI_ANS\nIf you mean ": 0.0})


def test_one_allowed_prefix_is_certain_and_none_is_unknown():
    assert PrefixChoice(["#ANSWER "]).result == {"#ANSWER ": 1.0}
    assert PrefixChoice([]).result is None


def test_a_token_that_fits_several_open_prefixes_splits_its_credit():
    choice = PrefixChoice(["#AB", "#AC", "#D"])
    choice.step("#", [("A", 0.8), ("D", 0.2)], taken=("A", 0.8))
    assert choice.result == pytest.approx({"#AB": 0.4, "#AC": 0.4, "#D": 0.2})
