"""Words of a list that names every reading: readings named by the words their question adds
to the query (`--list-labels difference`) vs by the whole disambiguated question.

    python benchmarks/list_label_words.py [--split train]

Both lists are the bootstrap's own demonstrations (`demonstrations`, the text the policy is
taught), over the split's ambiguous items; beta prices each of their words. Also counts the
items whose readings the difference would not tell apart (they keep whole questions).
"""

import argparse
import statistics

from askwise.policy import Action, Costs, count_words, parse_action
from askwise.training.bootstrap import demonstrations, reading_labels
from askwise.training.data import load_ambigqa


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split", default="train", choices=["train", "dev"])
    args = parser.parse_args()
    items = [item for item in load_ambigqa(args.split, grounded=False) if item.ambiguous]
    words = {}
    for labels in ("question", "difference"):
        examples = demonstrations(items, [Costs(alpha=0.1, beta=0.01)], 1, seed=0,
                                  actions=(Action.MULTI_ANSWER,), list_labels=labels)
        words[labels] = [count_words(parse_action(reply).message) for _, reply in examples]
    kept = sum(reading_labels(item, "difference") == reading_labels(item) for item in items)
    for labels, counts in words.items():
        print(f"{labels:>10} labels: {statistics.mean(counts):5.1f} words per list "
              f"(median {statistics.median(counts):g})")
    print(f"{len(items)} ambiguous {args.split} items; {kept} keep whole questions")
    print(f"ratio difference / question: "
          f"{statistics.mean(words['difference']) / statistics.mean(words['question']):.2f}")


if __name__ == "__main__":
    main()
