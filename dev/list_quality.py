"""What a user sees of an evaluation's forced questions and lists, by the report's measures
(training/quality.py), read from the episodes an `askwise eval` folder holds.

    python dev/list_quality.py runs/eval-v21v-selection

Prints: the forced questions on ambiguous items (naming two readings, one sentence ending
with "?", over 30 words); the forced lists (lines per list on ambiguous items, lines whose
label names a reading, lists with two labels alike, readings some label names, the picked
line's F1 over the best line's); and the picked line against the answer after a question
where both named the user's reading.
"""

import argparse
import json
from pathlib import Path

from askwise.training.episodes import load_episodes
from askwise.training.evaluate import EvalConfig, load_items
from askwise.training.quality import list_against_follow_up, list_quality, question_quality


def episodes(folder: Path, name: str):
    return load_episodes(folder / f"episodes-{name}.jsonl") + load_episodes(folder / f"episodes-{name}.jsonl.gz")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    folder = parser.parse_args().folder
    config = EvalConfig.model_validate_json((folder / "eval_config.json").read_text())
    items = {item.id: item for item in load_items(config)}
    multi, clarify = episodes(folder, "always-multi"), episodes(folder, "always-clarify")
    print(json.dumps({"lists": config.lists, "questions": question_quality(clarify, items),
                      "lists_quality": list_quality(multi, items),
                      "list_against_question": list_against_follow_up(multi, clarify, items)}, indent=1))


if __name__ == "__main__":
    main()
