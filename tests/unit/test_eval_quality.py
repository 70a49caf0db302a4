"""What the evaluation sees of the policy's turns: questions, lists, ambiguity, steering."""

import asyncio

import pytest
from test_training_episodes import ITEM, PLAIN, RuleAssistant

from askwise.policy.engines.base import SamplingParams
from askwise.training.episodes import Episode, EpisodeSpec, play_episodes
from askwise.training.quality import awareness, list_quality, question_quality, steering
from askwise.training.scoring import spearman
from askwise.training.simulator import LiteralSimulator

ITEMS = {ITEM.id: ITEM, PLAIN.id: PLAIN}


def episode(item, turns, f1=1.0, questions=0, intent=0):
    return Episode(item_id=item.id, sample=0, intent=intent, alpha=0.1, beta=0.01, forced=None,
                   turns=[{"role": r, "content": c, "action": a} for r, c, a in turns], final="",
                   f1=f1, questions=questions, words=3, well_formed=True)


def test_question_quality_counts_questions_that_name_two_readings():
    asked = [episode(ITEM, [("user", ITEM.query, None), ("assistant", q, "clarify"), ("user", "x", None),
                            ("assistant", "1987", "answer")], questions=1)
             for q in ("The short or the series?", "What do you mean?", "Is it the series")]
    asked.append(episode(PLAIN, [("user", PLAIN.query, None), ("assistant", "Which play?", "clarify"),
                                 ("user", "x", None), ("assistant", "Shakespeare", "answer")], questions=1))
    q = question_quality(asked, ITEMS)
    assert q["questions"] == 3  # the single-reading item's question is not counted
    assert q["naming_two_readings"] == 1 / 3 and q["are_questions"] == 2 / 3
    assert q["mean_words"] == (5 + 4 + 4) / 3


def test_list_quality_compares_the_picked_line_with_the_best_line():
    good = episode(ITEM, [("user", ITEM.query, None), ("assistant", "If you mean as a short: April 19, 1987\n"
                          "If you mean as a series: December 17, 1989", "multi_answer")], f1=1.0)
    # labels that lead the user to the wrong line: it picks 0-F1, the best line held 1.0
    swapped = episode(ITEM, [("user", ITEM.query, None), ("assistant", "If you mean as a short: December 17, "
                             "1989\nIf you mean as a series: April 19, 1987", "multi_answer")], f1=0.0)
    q = list_quality([good, swapped], ITEMS)
    assert q["lists"] == 2 and q["best_line_f1"] == 1.0 and q["picked_over_best"] == 0.5


def test_awareness_separates_ambiguous_from_single_reading_items():
    ask = episode(ITEM, [("user", "q", None), ("assistant", "?", "clarify"), ("user", "x", None),
                         ("assistant", "a", "answer")], questions=1)
    answer = episode(PLAIN, [("user", "q", None), ("assistant", "a", "answer")])
    rates = awareness([ask, answer], ITEMS)
    assert rates == {"ambiguous_clarify_or_list": 1.0, "single_clarify_or_list": 0.0,
                     "ambiguous_clarify": 1.0, "single_clarify": 0.0}


def grid(multi):
    """Cells of a 2x3 grid whose multi-answer rate is `multi[(alpha, beta)]`."""
    return [{"alpha": a, "beta": b, "policy": {"multi_rate": m, "clarify_rate": 0.5 - a},
             "bound": {"multi_rate": m, "clarify_rate": 0.5 - a}} for (a, b), m in multi.items()]


def test_steering_is_judged_within_each_row_and_column():
    falling = {(0.1, 0.001): 0.9, (0.1, 0.01): 0.5, (0.1, 0.03): 0.1,
               (0.5, 0.001): 0.4, (0.5, 0.01): 0.4, (0.5, 0.03): 0.4}
    result = steering(grid(falling), spearman, lambda c, r: c["policy"][r], lambda c, r: c["bound"][r])
    first, flat = result["rows"]
    assert first["spearman"] == pytest.approx(-1.0) and first["monotone"] and first["bound_varies"]
    assert flat["spearman"] is None and not flat["bound_varies"]  # a row the bound leaves flat
    assert all(col["spearman"] == pytest.approx(-1.0) for col in result["columns"])
    # pooled over the grid the same rates correlate only weakly: why rows are judged alone
    cells = grid(falling)
    assert abs(spearman([c["beta"] for c in cells], [c["policy"]["multi_rate"] for c in cells])) < 0.8


def test_a_rise_against_the_cost_is_flagged():
    rising = {(0.1, 0.001): 0.1, (0.1, 0.01): 0.5, (0.1, 0.03): 0.45}
    [row] = steering(grid(rising), spearman, lambda c, r: c["policy"][r], lambda c, r: c["bound"][r])["rows"]
    assert not row["monotone"] and row["largest_rise"] > 0.3


def test_episodes_play_with_the_literal_user():
    """The rule assistant asks "The short or the series?"; the literal user answers "series"
    or "short", and the answer that follows is right."""
    from askwise.policy import Action, Costs

    specs = [EpisodeSpec(ITEM, k, k, Costs(alpha=0.1, beta=0.01), forced=Action.CLARIFY) for k in (0, 1)]
    engine = RuleAssistant()
    episodes = asyncio.run(play_episodes(engine, LiteralSimulator(), specs, SamplingParams(), 1))
    assert [e.turns[2]["content"] for e in episodes] == ["short", "series"]
    assert [e.f1 for e in episodes] == [1.0, 1.0]
