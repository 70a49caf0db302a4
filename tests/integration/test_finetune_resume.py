"""A fine-tune killed while it writes a checkpoint picks up from the last whole one: it trains
only the steps left, says so in its stats, and ends with the adapter an uninterrupted run
makes."""

from pathlib import Path

import pytest
from safetensors.torch import load_file
from transformers import Trainer

from askwise.policy import Costs, Turn, render_prompt
from askwise.training.config import TrainConfig
from askwise.training.data import load_ambigqa
from askwise.training.finetune import finetune


class Stopped(Exception):
    pass


@pytest.fixture(scope="module")
def examples():
    items = load_ambigqa("dev", limit=3)
    return [(render_prompt([Turn("user", item.query)], Costs(alpha=0.1, beta=0.001), item.documents),
             f"#ANSWER {item.interpretations[0].answers[0]}") for item in items]


def test_a_stopped_finetune_resumes_from_its_checkpoint(examples, base_checkpoint, tmp_path, monkeypatch):
    # No dropout: the two runs then differ only if resuming loses or repeats a step.
    config = TrainConfig(output_dir=tmp_path, batch_size=1, save_every=1, lora_dropout=0.0,
                         torch_threads=1)
    whole = finetune(examples, base_checkpoint, tmp_path / "whole", config, learning_rate=1e-3)
    assert (whole.steps, whole.resumed_from_step) == (3, 0)

    # Killed while writing its second checkpoint: the weights are out, the optimizer is a
    # truncated file, and the trainer's state (written last) never came.
    real_save, saves = Trainer._save_optimizer_and_scheduler, []

    def killed_on_second_save(self, output_dir):
        saves.append(output_dir)
        if len(saves) == 2:
            (Path(output_dir) / "optimizer.pt").write_bytes(b"\x00" * 10)
            raise Stopped
        return real_save(self, output_dir)

    monkeypatch.setattr(Trainer, "_save_optimizer_and_scheduler", killed_on_second_save)
    with pytest.raises(Stopped):
        finetune(examples, base_checkpoint, tmp_path / "resumed", config, learning_rate=1e-3)
    monkeypatch.undo()
    resumed = finetune(examples, base_checkpoint, tmp_path / "resumed", config, learning_rate=1e-3)

    assert (resumed.steps, resumed.resumed_from_step) == (3, 1)
    assert resumed.losses == pytest.approx(whole.losses[1:], rel=1e-5)  # the two steps left
    assert 0 < resumed.train_tokens < whole.train_tokens  # only the steps this process ran
    a = load_file(tmp_path / "whole" / "adapter_model.safetensors")
    b = load_file(tmp_path / "resumed" / "adapter_model.safetensors")
    assert a.keys() == b.keys()
    for name in a:
        assert (a[name] - b[name]).abs().max() <= 1e-5 + 1e-4 * a[name].abs().max(), name
