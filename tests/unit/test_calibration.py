"""The calibration's monotone fit and the solver that turns target rates into costs."""

import math

import pytest

from askwise.policy.calibration import (
    Calibration,
    CalibrationError,
    Cell,
    isotonic_decreasing,
    parse_target,
)

ALPHAS = [0.01, 0.03, 0.1, 0.3, 1.0]
BETAS = [0.001, 0.01, 0.1]


def synthetic(clarify_of, multi_of, noise=None):
    cells = []
    for a in ALPHAS:
        for b in BETAS:
            c, m = clarify_of(a), multi_of(b)
            if noise:
                c, m = noise(a, b, c, m)
            cells.append(Cell(a, b, 100, {"answer": 1 - c - m, "clarify": c, "multi_answer": m}))
    return Calibration(ALPHAS, BETAS, cells)


def clarify_of(a):  # 0.6 at alpha 0.01 down to 0 at 1
    return 0.6 * (1 - math.log(a / 0.01) / math.log(100))


def multi_of(b):  # 0.3 at beta 0.001 down to 0 at 0.1
    return 0.3 * (1 - math.log(b / 0.001) / math.log(100))


def test_isotonic_pools_violators_and_keeps_monotone_data():
    assert isotonic_decreasing([3, 2, 1], [1, 1, 1]) == [3, 2, 1]
    assert isotonic_decreasing([1, 3, 2], [1, 1, 1]) == pytest.approx([2, 2, 2])
    assert isotonic_decreasing([0.5, 0.2, 0.4], [1, 3, 1]) == pytest.approx([0.5, 0.25, 0.25])


def test_the_fit_is_monotone_even_when_the_rates_are_not():
    noisy = synthetic(clarify_of, multi_of,
                      lambda a, b, c, m: (c + (0.1 if a == 0.1 else 0), m + (0.05 if b == 0.1 else 0)))
    for j in range(len(BETAS)):
        column = [noisy.fitted["clarify"][i][j] for i in range(len(ALPHAS))]
        assert column == sorted(column, reverse=True)
    for i in range(len(ALPHAS)):
        assert noisy.fitted["multi_answer"][i] == sorted(noisy.fitted["multi_answer"][i], reverse=True)


def test_predictions_interpolate_in_log_scale_and_sum_to_one():
    cal = synthetic(clarify_of, multi_of)
    rates = cal.predict(math.sqrt(0.01 * 0.03), 0.01)
    assert rates["clarify"] == pytest.approx((clarify_of(0.01) + clarify_of(0.03)) / 2)
    assert sum(rates.values()) == pytest.approx(1.0)
    assert cal.predict(100, 100) == cal.predict(1.0, 0.1)  # clamped to the grid


def test_a_reachable_target_gives_measured_costs_that_meet_it():
    cal = synthetic(clarify_of, multi_of)
    solution = cal.solve({"clarify": 0.3, "multi_answer": 0.15})
    assert (solution.alpha, solution.beta) == (0.1, 0.01)  # the measured pair with those rates
    assert solution.predicted["clarify"] == pytest.approx(0.3)
    solution = cal.solve({"clarify": 0.2})  # between measured rates 0.3 and 0.16: the nearer
    assert solution.alpha == 0.3 and solution.beta in BETAS


def test_interpolation_finds_costs_between_measured_ones():
    cal = synthetic(clarify_of, multi_of)
    solution = cal.solve({"clarify": 0.2, "multi_answer": 0.1}, interpolate=True)
    assert solution.predicted["clarify"] == pytest.approx(0.2, abs=0.02)
    assert solution.predicted["multi_answer"] == pytest.approx(0.1, abs=0.02)
    assert clarify_of(solution.alpha) == pytest.approx(0.2, abs=0.02)


def test_an_unreachable_target_names_the_nearest_rates():
    cal = synthetic(clarify_of, multi_of)
    with pytest.raises(CalibrationError, match=r"nearest reachable rates are .*clarify 0\.60"):
        cal.solve({"clarify": 0.9})


def test_targets_parse_with_short_names_and_reject_nonsense():
    assert parse_target("clarify=0.2, multi=0") == {"clarify": 0.2, "multi_answer": 0.0}
    for bad in ["clarify=2", "ask=0.1", "clarify", "clarify=0.7,multi=0.5", "", "clarify=x"]:
        with pytest.raises(CalibrationError):
            parse_target(bad)


def test_a_calibration_round_trips_through_json_and_rejects_other_files(tmp_path):
    cal = synthetic(clarify_of, multi_of)
    cal.save(tmp_path / "c.json")
    again = Calibration.load(tmp_path / "c.json")
    assert again.predict(0.05, 0.005) == cal.predict(0.05, 0.005)
    (tmp_path / "other.json").write_text('{"hello": 1}')
    with pytest.raises(CalibrationError):
        Calibration.load(tmp_path / "other.json")
    with pytest.raises(CalibrationError, match="lacks"):
        Calibration(ALPHAS, BETAS, cal.cells[:-1])


def test_presets_given_as_targets_are_resolved_by_the_calibration(tmp_path):
    from askwise.policy.costs import load_presets

    cal = synthetic(clarify_of, multi_of)
    path = tmp_path / "presets.toml"
    path.write_text('[presets.voice-app]\ntarget = {clarify = 0.2, multi = 0}\nrationale = "r"\n')
    preset = load_presets(path, cal)["voice-app"]
    solution = cal.solve({"clarify": 0.2, "multi_answer": 0.0})
    assert preset.target == {"clarify": 0.2, "multi_answer": 0.0}
    assert (preset.costs.alpha, preset.costs.beta) == (solution.alpha, solution.beta)
    with pytest.raises(ValueError, match="--calibration"):
        load_presets(path)
    path.write_text("[presets.x]\ntarget = {clarify = 0.2}\nalpha = 0.1\n")
    with pytest.raises(ValueError, match="both a target and costs"):
        load_presets(path, cal)
    path.write_text("[presets.x]\ntarget = {clarify = 0.95}\n")
    with pytest.raises(ValueError, match="nearest reachable"):
        load_presets(path, cal)
