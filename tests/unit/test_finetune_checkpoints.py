"""Which saved state a fine-tune resumes from: the complete one with the most steps."""

import json

from askwise.training.trainer import last_checkpoint


def _checkpoint(directory, step=None):
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "adapter_model.safetensors").write_bytes(b"weights")
    if step is not None:  # the Trainer writes its state last: a checkpoint without it is partial
        (directory / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    return directory


def test_resumes_from_the_newest_complete_checkpoint_not_a_partial_one(tmp_path):
    state = tmp_path / "state"
    _checkpoint(state / "checkpoint-20", 20)
    _checkpoint(state / "checkpoint-30")  # killed mid-save: no trainer_state.json
    assert last_checkpoint(state) == state / "checkpoint-20"
    _checkpoint(state / "checkpoint-100", 100)  # by step, not by name
    assert last_checkpoint(state) == state / "checkpoint-100"


def test_nothing_to_resume(tmp_path):
    assert last_checkpoint(tmp_path / "state") is None
    (tmp_path / "state").mkdir()
    assert last_checkpoint(tmp_path / "state") is None
