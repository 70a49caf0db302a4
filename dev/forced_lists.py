"""Forced multi-answers of one adapter, or two side by side: F1 of the reading the user picks,
F1 of the list's best line (had the user picked it), readings named and words, per number of
readings; what decides whether listing can pay.

    python dev/forced_lists.py <adapter A> [<adapter B>] --items 200 [--backend vllm]

The episodes are `askwise eval`'s always-multi baseline (the same dev items, intents, prompt
costs and reference user; `load_items`, `fixed_specs`, `f1_by_readings`) played greedily
in-process for each adapter in turn, without the rest of the evaluation's 5,000+ episodes.
With two adapters it prints B's words and F1 on ambiguous items as ratios to A's; with one,
the F1 its lists score as picked by label against what their best lines hold.
"""

import argparse
import asyncio
import json
from pathlib import Path

from askwise.policy import Action
from askwise.policy.checkpoints import ensure_base_checkpoint
from askwise.policy.engines.base import SamplingParams
from askwise.training.episodes import play_episodes
from askwise.training.evaluate import EvalConfig, fixed_specs, load_items
from askwise.training.quality import list_quality
from askwise.training.rollout import rollout_engine
from askwise.training.scoring import f1_by_readings
from askwise.training.simulator import ReferenceSimulator


async def forced_lists(adapter: Path, specs, max_tokens: int, threads: int, backend: str):
    params = SamplingParams(max_tokens=max_tokens, temperature=0.0)
    async with rollout_engine(backend, ensure_base_checkpoint(), adapter, threads=threads) as engine:
        return await play_episodes(engine, ReferenceSimulator(), specs, params, 1, desc=adapter.name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("first", type=Path)
    parser.add_argument("second", type=Path, nargs="?", help="leave out to read one adapter's lists")
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--backend", choices=("transformers", "vllm"), default="transformers",
                        help="engine for the lists (vllm: as askwise eval plays them, faster)")
    parser.add_argument("--json", type=Path, default=None, help="also write the tables here")
    args = parser.parse_args()
    config = EvalConfig(items=args.items)
    items = load_items(config)
    by_id = {item.id: item for item in items}
    specs = fixed_specs(items, config, Action.MULTI_ANSWER)
    tables, quality = {}, {}
    for adapter in [a for a in (args.first, args.second) if a is not None]:
        episodes = asyncio.run(forced_lists(adapter, specs, config.max_tokens, args.threads,
                                            args.backend))
        tables[str(adapter)] = f1_by_readings({"always-multi": episodes}, by_id)
        quality[str(adapter)] = list_quality(episodes, by_id)
    print("| adapter | readings | items | F1 | best line's F1 | list_lines | list_words |\n"
          "| --- | --- | --- | --- | --- | --- | --- |")
    for name, table in tables.items():
        for k, row in table.items():
            print(f"| `{name}` | {k} | {row['items']} | {row['always-multi']:.3f} | "
                  f"{row['list_best_line_f1']:.3f} | {row['list_lines']:.2f} | {row['list_words']:.1f} |")

    def ambiguous_mean(table, key):
        rows = [row for k, row in table.items() if k != "1"]
        return sum(row[key] * row["items"] for row in rows) / sum(row["items"] for row in rows)

    for name, q in quality.items():
        # The evaluation's forced-lists figure (eval.json "forced_lists"), over every list
        print(f"`{name}`: {q['lists']} lists, picked line's F1 {q['picked_f1']:.3f}, best line's "
              f"{q['best_line_f1']:.3f}, picked / best {q['picked_over_best']:.3f}")
    first = tables[str(args.first)]
    if args.second is None:
        picked, best = ambiguous_mean(first, "always-multi"), ambiguous_mean(first, "list_best_line_f1")
        print(f"ambiguous items: F1 {picked:.3f} as picked by label, {best:.3f} from the best line")
    else:
        second = tables[str(args.second)]
        for key, label in (("list_words", "words"), ("always-multi", "F1")):
            a, b = ambiguous_mean(first, key), ambiguous_mean(second, key)
            print(f"ambiguous items, {label}: {a:.3f} -> {b:.3f}, ratio {b / a:.2f}")
    if args.json:
        args.json.write_text(json.dumps(tables, indent=2) + "\n")


if __name__ == "__main__":
    main()
