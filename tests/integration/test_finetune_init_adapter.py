"""A fine-tune that continues an adapter trains with this run's LoRA dropout, not the one the
adapter's own config recorded from the run that made it."""

import json

from askwise.policy import Costs, Turn, render_prompt
from askwise.training.config import TrainConfig
from askwise.training.data import load_ambigqa
from askwise.training.finetune import finetune


def test_an_init_adapter_takes_the_runs_lora_dropout(base_checkpoint, tmp_path):
    item = load_ambigqa("dev", limit=1)[0]
    examples = [(render_prompt([Turn("user", item.query)], Costs(alpha=0.1, beta=0.001), item.documents),
                 f"#ANSWER {item.interpretations[0].answers[0]}")]
    first = TrainConfig(output_dir=tmp_path, batch_size=1, lora_dropout=0.0, torch_threads=1)
    finetune(examples, base_checkpoint, tmp_path / "first", first, learning_rate=1e-3)
    assert json.loads((tmp_path / "first" / "adapter_config.json").read_text())["lora_dropout"] == 0.0

    second = first.model_copy(update={"lora_dropout": 0.1})
    finetune(examples, base_checkpoint, tmp_path / "second", second, learning_rate=1e-3,
             init_adapter=tmp_path / "first")
    assert json.loads((tmp_path / "second" / "adapter_config.json").read_text())["lora_dropout"] == 0.1
