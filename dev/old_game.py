"""A policy evaluated in the earlier game on the items of the current one, to see the change
of game on its own: the same checkpoint, items, intents and grid; only the documents
("qa-facts": one "Q: <question> A: <answer>"-style fact per reading, a single-reading item's
fact the query itself) and the user (`reference`: it states its intent's whole question
whatever it is asked) are the earlier ones.

    python dev/old_game.py --split dev-selection --items 200 --output-dir runs/eval-v13-old-game

It plays the policy only (no baselines: the earlier game's baselines are in the reports made
in it) and writes the same eval.json/eval.md as `askwise eval`.
"""

import argparse
from pathlib import Path

from askwise.policy import Document
from askwise.training import evaluate
from askwise.training.data import Item, item_rng, load_ambigqa

FACT_TEMPLATES = (
    "{question} {answer}.",
    "Q: {question} A: {answer}.",
    "{question} The answer is {answer}.",
    "The answer to \"{question}\" is {answer}.",
    "{answer} is the answer to: {question}",
)


def qa_facts(item: Item, pool: list[Item], seed: int) -> Item:
    """The earlier documents, as data.py built them before passages.py."""
    rng = item_rng(seed, "documents", item.id)

    def fact(question, answer):
        return rng.choice(FACT_TEMPLATES).format(question=question.rstrip("?") + "?", answer=answer)

    docs = [fact(r.question, r.answers[0]) for r in item.interpretations]
    total = max(len(docs), rng.randint(4, 6))
    while len(docs) < total:
        other = pool[rng.randrange(len(pool))]
        if other.id == item.id:
            continue
        reading = rng.choice(other.interpretations)
        docs.append(fact(reading.question, reading.answers[0]))
    rng.shuffle(docs)
    return Item(item.id, item.query, item.interpretations, tuple(Document(d) for d in docs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split", default="dev-selection")
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument("--adapter", type=Path, default=None, help="default: the shipped policy")
    parser.add_argument("--output-dir", type=Path, required=True)
    args = parser.parse_args()

    from askwise.policy.checkpoints import default_adapter, trained_grid

    adapter = args.adapter or default_adapter()
    pool = load_ambigqa("dev", grounded=False)

    def load_items(config):
        return [qa_facts(item, pool, config.seed)
                for item in load_ambigqa(config.split, limit=config.items, grounded=False)]

    evaluate.load_items = load_items
    config = evaluate.EvalConfig(adapter=adapter, split=args.split, items=args.items, simulator="reference",
                                 baselines=False, prompted=False, output_dir=args.output_dir,
                                 **trained_grid(adapter))
    summary = evaluate.evaluate(config)
    print((config.output_dir / "eval.md").read_text())
    print({k: v for k, v in summary.items() if k not in ("cells",)})


if __name__ == "__main__":
    main()
