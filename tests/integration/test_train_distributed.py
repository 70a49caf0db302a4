"""`askwise train` under `accelerate launch` with two processes (gloo, on this CPU): the grow
on the main process, the fine-tune data-parallel on both, one adapter saved. Its loss curve
is the one a single process makes from the same episodes when it accumulates the same two
micro-batches per step."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

TINY = ["--train-items", "4", "--bootstrap-items", "0", "--samples-per-action", "1",
        "--free-samples", "0", "--rollout-backend", "transformers", "--batch-size", "2",
        "--max-tokens", "24", "--examples-per-item", "3", "--torch-threads", "1",
        "--lora-dropout", "0", "--value-items", "0", "--save-every", "100"]
# The same updates, summed in another order (two processes' gradients averaged, or two
# micro-batches accumulated) and in bf16 autocast where the CPU has it: the losses agree to
# this relative tolerance, and a wrong batch, schedule or scaling is off by far more.
TOLERANCE = 2e-3


def run(command, timeout=1500):
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stderr[-4000:]
    return result


def losses(out: Path) -> list[float]:
    return json.loads((out / "iter-1" / "improve.json").read_text())["finetune"]["losses"]


def test_two_processes_train_end_to_end_as_one_process_would(base_checkpoint, tmp_path):
    two = tmp_path / "two"
    accelerate = Path(sys.executable).parent / "accelerate"
    # --multi_gpu is accelerate's torchrun launcher; on a machine without GPUs its processes
    # join a gloo group (accelerate's --cpu starts a single process)
    result = run([str(accelerate), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                  "--main_process_port", "0", "-m", "askwise", "train", "--output-dir", str(two), *TINY])
    adapter = two / "adapter"
    assert result.stdout.count(str(adapter)) == 1  # one process reports, and one published
    assert (adapter / "adapter_model.safetensors").is_file()
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_checkpoint), str(adapter))
    curve = losses(two)
    assert len(curve) >= 2 and all(x == x for x in curve)

    # One process, the same episodes (copied, not played again), two micro-batches a step.
    one = tmp_path / "one"
    (one / "iter-1").mkdir(parents=True)
    shutil.copy(two / "iter-1" / "episodes.jsonl", one / "iter-1" / "episodes.jsonl")
    run([sys.executable, "-m", "askwise", "train", "--output-dir", str(one), *TINY,
         "--gradient-accumulation-steps", "2"])
    assert losses(one) == pytest.approx(curve, rel=TOLERANCE)
