import math

import pytest
from pydantic import ValidationError

from askwise.policy.costs import (
    CostOverrides,
    Costs,
    UnknownPresetError,
    format_cost,
    load_presets,
    resolve_costs,
)


def test_costs_accept_finite_non_negative_numbers():
    assert Costs(alpha=0, beta=0.02) == Costs(alpha=0.0, beta=0.02)


@pytest.mark.parametrize("alpha", [-0.1, math.nan, math.inf, "0.1", None, True, [0.1]])
def test_costs_reject_bad_values_with_a_clear_message(alpha):
    with pytest.raises(ValidationError) as info:
        Costs(alpha=alpha, beta=0.01)
    assert "alpha" in str(info.value)


def test_costs_reject_unknown_fields():
    with pytest.raises(ValidationError):
        Costs(alpha=0.1, beta=0.1, gamma=1)


def test_builtin_presets_have_numbers_and_rationale():
    presets = load_presets()
    for name in ("default", "voice", "text"):
        assert name in presets
        assert presets[name].rationale
    # The point of the presets: voice makes words dear, text makes turns dear.
    assert presets["voice"].costs.beta > presets["text"].costs.beta
    assert presets["text"].costs.alpha > presets["voice"].costs.alpha


def test_presets_file_adds_and_overrides(tmp_path):
    path = tmp_path / "presets.toml"
    path.write_text('[presets.kiosk]\nalpha = 0.2\nbeta = 0.01\nrationale = "x"\n'
                    '[presets.voice]\nalpha = 0.0\nbeta = 0.05\n')
    presets = load_presets(path)
    assert presets["kiosk"].costs == Costs(alpha=0.2, beta=0.01)
    assert presets["voice"].costs == Costs(alpha=0.0, beta=0.05)
    assert "text" in presets


@pytest.mark.parametrize("text, fragment", [
    ("[presets.bad]\nalpha = -1\nbeta = 0\n", "bad"),
    ("[presets.bad]\nalpha = 0.1\n", "beta"),
    ("nothing = 1\n", "[presets.<name>]"),
])
def test_bad_presets_file_is_reported(tmp_path, text, fragment):
    path = tmp_path / "presets.toml"
    path.write_text(text)
    with pytest.raises(ValueError) as info:
        load_presets(path)
    assert fragment in str(info.value)


def test_resolve_costs_numbers_override_preset():
    presets = load_presets()
    voice = presets["voice"].costs
    costs, name = resolve_costs(presets, "voice", CostOverrides(alpha=0.3))
    assert name == "voice" and costs == Costs(alpha=0.3, beta=voice.beta)
    assert resolve_costs(presets)[1] == "default"


def test_unknown_preset_lists_known_ones():
    with pytest.raises(UnknownPresetError) as info:
        resolve_costs(load_presets(), "podcast")
    assert "voice" in str(info.value) and "podcast" in str(info.value)


def test_format_cost_is_plain_numbers():
    assert format_cost(0.005) == "0.005"
    assert format_cost(0) == "0"
    assert format_cost(0.1) == "0.1"


def test_checkpoint_of_another_prompt_format_is_refused(tmp_path):
    from askwise.policy.checkpoints import CheckpointError, check_prompt_format, write_meta

    write_meta(tmp_path, kind="lora", prompt_format="askwise-prompt-0")
    with pytest.raises(CheckpointError, match="askwise-prompt-0"):
        check_prompt_format(tmp_path)
    write_meta(tmp_path, kind="base")
    check_prompt_format(tmp_path)  # untrained checkpoints record no format
