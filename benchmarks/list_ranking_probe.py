"""Can the policy tell which queries a list wins on? AUC of its P(#MULTI_ANS) against a grow's labels.

At low alpha and cheap words a list is the best action on a few percent of a grow's items
(improve's labels, `improve.json`), and a policy must list on those to follow beta there
(`spearman_rows.py`). For every item of the grow this reads the policy's P(tag) for its first
action at one cost pair (as `first_action_probe.py` does) and the item's best action by the
grow's episodes (as improve picks it), then prints how well P(#MULTI_ANS), and
P(#MULTI_ANS) - P(#CLARIFY), rank the list-winning items above the others: the AUC (0.5: no
better than chance; 1: every list-winning item above every other), over all items and over
the ambiguous ones only (where the choice is between a list and a question). A high AUC with
no greedy list means only the threshold stands in the way; an AUC near 0.5 means the policy
cannot tell those items apart from their prompts.

    zcat checkpoints/v14-grow/episodes.jsonl.gz > /tmp/v14-grow.jsonl
    python benchmarks/list_ranking_probe.py policy/trained/smollm2-135m-askwise-grounded-lora \\
        /tmp/v14-grow.jsonl --items 400 --seed 7 --alpha 0.02 --beta 0.001 --split-at 200

`--items` and `--seed` must be the grow's (`train_items`, `seed` in its config.json), so that
the items carry the documents the grow played them with. v13's forced episodes of 200 dev
items, for `--split dev --items 200 --seed 0`, are in `results/forced-v13-dev-200.tar.gz`.
"""

import argparse
import json
from pathlib import Path

import torch
from tqdm import tqdm

from askwise.policy import Action, Costs
from askwise.training.data import load_ambigqa
from askwise.training.episodes import load_episodes
from askwise.training.improve import improve
from first_action_probe import load_policy, tag_probabilities  # the script beside this one


def auc(positives: list[float], negatives: list[float]) -> float | None:
    """P(a random positive scores above a random negative), ties counting half."""
    if not positives or not negatives:
        return None
    wins = sum((p > n) + 0.5 * (p == n) for p in positives for n in negatives)
    return wins / (len(positives) * len(negatives))


def ranking(rows: list[dict]) -> dict:
    """How P(#MULTI_ANS) ranks `rows`' list-winning items above the rest."""
    lists = [r for r in rows if r["best"] == Action.MULTI_ANSWER.value]
    rest = [r for r in rows if r["best"] != Action.MULTI_ANSWER.value]
    result = {"items": len(rows), "list_best": len(lists),
              "greedy_lists": sum(r["greedy"] == "MULTI_ANS" for r in rows)}
    for name, score in (("p_multi", lambda r: r["p"]["MULTI_ANS"]),
                        ("p_multi_minus_p_clarify", lambda r: r["p"]["MULTI_ANS"] - r["p"]["CLARIFY"])):
        value = auc([score(r) for r in lists], [score(r) for r in rest])
        result[f"auc_{name}"] = None if value is None else round(value, 3)
    for label, chosen in (("list_best", lists), ("rest", rest)):
        mean = sum(r["p"]["MULTI_ANS"] for r in chosen) / max(1, len(chosen))
        result[f"mean_p_multi_{label}"] = round(mean, 3)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("adapter")
    parser.add_argument("episodes", type=Path, help="a grow's episodes.jsonl")
    parser.add_argument("--items", type=int, required=True, help="the grow's train_items")
    parser.add_argument("--seed", type=int, required=True, help="the grow's seed")
    parser.add_argument("--split", default="train",
                        help="AmbigQA split; dev with an `askwise eval` folder's forced episodes "
                             "(episodes-always-*.jsonl, concatenated) and its --items and --seed "
                             "labels items no fine-tune saw, one sample per action")
    parser.add_argument("--alpha", type=float, default=0.02)
    parser.add_argument("--beta", type=float, default=0.001)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--split-at", type=int, default=0,
                        help="also rank the ambiguous items among the first N and among the rest apart: "
                             "with N the train_items of the adapter's last fine-tune (which took the "
                             "first items in file order), a gap between them shows memorised items")
    parser.add_argument("--json", default=None, help="also write the per-item rows and summary here")
    args = parser.parse_args()
    costs = Costs(alpha=args.alpha, beta=args.beta)
    items = load_ambigqa(args.split, limit=args.items, grounded=True, seed=args.seed)
    best = {c.item_id: c.action for c in improve(items, load_episodes(args.episodes), [costs])}
    model, tokenizer, second = load_policy(args.adapter, args.device)
    rows = []
    for item in tqdm(items, desc="probe"):
        if item.id not in best:
            continue
        p = tag_probabilities(model, tokenizer, second, item, costs, args.device)
        rows.append({"item_id": item.id, "ambiguous": item.ambiguous, "best": best[item.id].value,
                     "p": p, "greedy": max(p, key=p.get)})

    summary = {"adapter": args.adapter, "alpha": args.alpha, "beta": args.beta, "items": len(rows)}
    ambiguous = [r for r in rows if r["ambiguous"]]
    scopes = {"all": rows, "ambiguous": ambiguous}
    if args.split_at:
        first = {item.id for item in items[:args.split_at]}
        scopes[f"ambiguous_first_{args.split_at}"] = [r for r in ambiguous if r["item_id"] in first]
        scopes["ambiguous_rest"] = [r for r in ambiguous if r["item_id"] not in first]
    for scope, chosen in scopes.items():
        summary[scope] = ranking(chosen)
    print(json.dumps(summary, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"summary": summary, "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
