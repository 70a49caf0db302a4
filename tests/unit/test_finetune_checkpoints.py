"""Which saved state a fine-tune resumes from: the complete one with the most steps."""

import json

from askwise.training.finetune import _last_checkpoint


def _checkpoint(directory, step=None):
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "model.safetensors").write_bytes(b"weights")
    if step is not None:
        (directory / "step.json").write_text(json.dumps({"step": step}))
    return directory


def test_resumes_from_the_newest_complete_checkpoint_not_a_partial_one(tmp_path):
    state = tmp_path / "state"
    _checkpoint(state / "0000020", 20)
    _checkpoint(state / "0000030.partial")  # killed mid-save: no step.json
    assert _last_checkpoint(state) == state / "0000020"


def test_a_run_saved_in_the_old_layout_still_resumes(tmp_path):
    state = _checkpoint(tmp_path / "state", 10)  # files straight in state/
    assert _last_checkpoint(state) == state
    _checkpoint(state / "0000020.partial")
    assert _last_checkpoint(state) == state
    _checkpoint(state / "0000020", 20)
    assert _last_checkpoint(state) == state / "0000020"


def test_nothing_to_resume(tmp_path):
    assert _last_checkpoint(tmp_path / "state") is None
    (tmp_path / "state").mkdir()
    assert _last_checkpoint(tmp_path / "state") is None
