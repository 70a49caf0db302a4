"""How a policy's first action depends on the costs and on ambiguity: P(tag | prompt + "#").

For the first N AmbigQA dev items (grounded) and every pair of `--alphas` x `--betas`, prints
the mean probability of each action tag's first token after "#", split by ambiguous and
unambiguous items, and how often each would win under greedy decoding. A steerable policy shows
P(#CLARIFY) falling as alpha rises and P(#MULTI_ANS) falling as beta rises; one that ignores
the costs prints the same numbers in every row. `--json` also writes the rows, and a one-line
summary (`steer_clarify`, `steer_multi`: the change in greedy clarify and multi-answer picks
from the cheapest to the dearest corner) ranks adapters in a sweep; `spearman_alpha_p_clarify`
and `spearman_beta_p_multi` correlate each cost with the mean probability of its action over
every cost pair read, as `askwise eval` correlates it with the action's rate.

    python dev/first_action_probe.py policy/trained/smollm2-135m-askwise-grounded-lora
"""

import argparse
import json
import statistics

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from askwise.policy import Action, Costs, Turn, render_prompt
from askwise.policy.checkpoints import apply_adapter, ensure_base_checkpoint
from askwise.training.data import load_ambigqa
from askwise.training.finetune import action_tag_ids
from askwise.training.scoring import spearman

# 0.2 sits between the trained 0.1 and 0.3, where the ask/answer switch belongs
ALPHAS = (0.02, 0.1, 0.2, 0.5)
BETAS = (0.001, 0.03)


def load_policy(adapter: str, device: str):
    """(model, tokenizer, second): `second` maps each tag's name to the token after "#" that
    decides it ("#ANSWER", "#CLARIFY", "#MULTI_ANS")."""
    torch.set_num_threads(2)
    base = ensure_base_checkpoint()
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = apply_adapter(AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32), adapter)
    second = {action.tag.lstrip("#"): token for action, token in zip(Action, action_tag_ids(tokenizer))}
    return model.to(device).eval(), tokenizer, second


def tag_probabilities(model, tokenizer, second, item, costs: Costs, device: str) -> dict[str, float]:
    """P(tag) for the first action on `item`'s opening turn at `costs`."""
    messages = render_prompt([Turn("user", item.query)], costs, item.documents, 1)
    text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False) + "#"
    ids = tokenizer(text, return_tensors="pt", add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logprobs = model(ids.to(device)).logits[0, -1].float().log_softmax(-1)
    return {t: logprobs[i].exp().item() for t, i in second.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("adapter")
    parser.add_argument("--items", type=int, default=40)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--json", default=None, help="also write the rows and summary here")
    parser.add_argument("--alphas", type=float, nargs="+", default=ALPHAS,
                        help="alphas to read, cheapest first (add an unseen one such as 0.05)")
    parser.add_argument("--betas", type=float, nargs="+", default=BETAS,
                        help="betas to read, cheapest first (add an unseen one such as 0.01)")
    args = parser.parse_args()
    model, tokenizer, second = load_policy(args.adapter, args.device)
    items = load_ambigqa("dev", limit=args.items)
    rows = []
    for alpha in args.alphas:
        for beta in args.betas:
            probs = [(item.ambiguous, tag_probabilities(model, tokenizer, second, item,
                                                        Costs(alpha=alpha, beta=beta), args.device))
                     for item in items]
            for ambiguous in (True, False):
                chosen = [p for a, p in probs if a == ambiguous]
                if not chosen:  # a small --items may hold no item of one kind
                    continue
                means = {t: round(statistics.mean(p[t] for p in chosen), 3) for t in second}
                wins = {t: sum(max(p, key=p.get) == t for p in chosen) for t in second}
                rows.append({"alpha": alpha, "beta": beta, "ambiguous": ambiguous, "items": len(chosen),
                             "mean_p": means, "greedy": wins})
                print(f"alpha={alpha:g} beta={beta:g} {'ambiguous' if ambiguous else 'unambiguous'} "
                      f"({len(chosen)} items): mean P {means}; greedy picks {wins}", flush=True)

    def picks(tag, alpha=None, beta=None):
        return sum(r["greedy"][tag] for r in rows
                   if (alpha is None or r["alpha"] == alpha) and (beta is None or r["beta"] == beta))

    def cost_and_p(cost, tag):
        """(cost, mean P(tag)) per cost pair, over all items of both kinds."""
        cells = sorted({(r["alpha"], r["beta"]) for r in rows})
        mean_p = [sum(r["mean_p"][tag] * r["items"] for r in rows if (r["alpha"], r["beta"]) == cell)
                  / sum(r["items"] for r in rows if (r["alpha"], r["beta"]) == cell) for cell in cells]
        return [cell[0 if cost == "alpha" else 1] for cell in cells], mean_p

    summary = {"adapter": args.adapter, "items": len(items),
               "steer_clarify": picks("CLARIFY", alpha=args.alphas[0]) - picks("CLARIFY", alpha=args.alphas[-1]),
               "steer_multi": picks("MULTI_ANS", beta=args.betas[0]) - picks("MULTI_ANS", beta=args.betas[-1]),
               "clarify_by_alpha": {str(alpha): picks("CLARIFY", alpha=alpha) for alpha in args.alphas},
               "multi_by_beta": {str(beta): picks("MULTI_ANS", beta=beta) for beta in args.betas},
               # Over every (alpha, beta) read, as `askwise eval` takes its Spearman over the grid:
               # a probability that follows the costs below the greedy switch shows here first.
               "spearman_alpha_p_clarify": spearman(*cost_and_p("alpha", "CLARIFY")),
               "spearman_beta_p_multi": spearman(*cost_and_p("beta", "MULTI_ANS"))}
    print(json.dumps(summary))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"summary": summary, "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
