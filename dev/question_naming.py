"""How many readings a policy's clarifying questions name, and what each kind earns.

    python dev/question_naming.py runs/v16/iter-1/episodes.jsonl --split train --items 600
    python dev/question_naming.py runs/eval-v16-test/episodes-always-clarify.jsonl --split dev-test

For every clarifying question on an ambiguous item (as `quality.question_quality` counts them), the
readings it names by the literal user's rule (`simulator.named_readings`): none, one, or two
or more. Prints the count and share of each kind and the mean F1 of the episodes they were
asked in (the episode's recorded F1 for its intent). Which items draw which kind of question
is not random (a reading that is hard to find is hard to answer too), so it also compares
the kinds within items: over the items with questions of both kinds, the mean per-item
difference in F1 and its standard error. Episodes come from a grow step (`<run>/iter-N/episodes.jsonl`, AmbigQA train)
or an evaluation (`episodes-*.jsonl[.gz]`, its dev slice); `--items` must cover the items
they were played on.
"""

import argparse
from collections import defaultdict
from pathlib import Path
from statistics import mean, stdev

from askwise.training.data import load_ambigqa
from askwise.training.episodes import load_episodes
from askwise.training.quality import clarifying_questions
from askwise.training.simulator import named_readings

KINDS = ("none", "one", "two or more")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("episodes", type=Path)
    parser.add_argument("--split", default="dev-selection", help="AmbigQA split the episodes were played on")
    parser.add_argument("--items", type=int, default=None, help="first N items of the split (default: all)")
    args = parser.parse_args()
    items = {item.id: item for item in load_ambigqa(args.split, limit=args.items)}
    f1s: dict[str, list[float]] = defaultdict(list)
    by_item: dict[tuple[str, str], list[float]] = defaultdict(list)
    for episode in load_episodes(args.episodes):
        item = items.get(episode.item_id)
        if item is None:
            parser.error(f"item {episode.item_id} is not among the first {args.items} of {args.split}")
        for _, question in clarifying_questions([episode], items):
            kind = KINDS[min(len(named_readings(item, question)), 2)]
            f1s[kind].append(episode.f1)
            by_item[item.id, kind].append(episode.f1)
    total = sum(map(len, f1s.values()))
    print(f"{total} clarifying questions on ambiguous items")
    for kind in KINDS:
        n = len(f1s[kind])
        if n:
            print(f"names {kind}: {n} ({n / total:.0%}), mean F1 of their episodes {sum(f1s[kind]) / n:.3f}")
    for a, b in ((KINDS[1], KINDS[2]), (KINDS[0], KINDS[1])):
        diffs = [mean(by_item[i, b]) - mean(by_item[i, a]) for i in {i for i, _ in by_item}
                 if by_item[i, a] and by_item[i, b]]
        if len(diffs) > 1:
            se = stdev(diffs) / len(diffs) ** 0.5
            print(f"within {len(diffs)} items with both: F1 after naming {b} minus {a} "
                  f"{mean(diffs):+.3f} (SE {se:.3f})")


if __name__ == "__main__":
    main()
