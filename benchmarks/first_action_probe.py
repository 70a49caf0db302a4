"""How a policy's first action depends on the costs and on ambiguity: P(tag | prompt + "#").

For the first N AmbigQA dev items (grounded) and four cost corners, prints the mean
probability of each action tag's first token after "#", split by ambiguous/unambiguous
items, and how often each would win under greedy decoding. A steerable policy shows
P(#CLARIFY) falling as alpha rises; one that ignores the costs prints the same numbers.

    python benchmarks/first_action_probe.py policy/trained/smollm2-135m-askwise-grounded-lora
"""

import argparse
import statistics

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from askwise.policy import Costs, Turn, render_prompt
from askwise.policy.checkpoints import apply_adapter, ensure_base_checkpoint
from askwise.training.data import load_ambigqa


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("adapter")
    parser.add_argument("--items", type=int, default=40)
    args = parser.parse_args()
    torch.set_num_threads(2)
    base = ensure_base_checkpoint()
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = apply_adapter(AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32), args.adapter).eval()
    # The token after "#" decides the action: "#ANSWER", "#CLARIFY", "#MULTI_ANS".
    second = {tag: tokenizer("#" + tag, add_special_tokens=False)["input_ids"][1]
              for tag in ("ANSWER", "CLARIFY", "MULTI_ANS")}
    items = load_ambigqa("dev", limit=args.items)
    for alpha in (0.02, 0.5):
        for beta in (0.001, 0.03):
            rows = []
            for item in items:
                messages = render_prompt([Turn("user", item.query)], Costs(alpha=alpha, beta=beta),
                                         item.documents, 1)
                text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False) + "#"
                ids = tokenizer(text, return_tensors="pt", add_special_tokens=False)["input_ids"]
                with torch.no_grad():
                    logprobs = model(ids).logits[0, -1].log_softmax(-1)
                rows.append((item.ambiguous, {t: logprobs[i].exp().item() for t, i in second.items()}))
            for ambiguous in (True, False):
                chosen = [p for a, p in rows if a == ambiguous]
                means = {t: round(statistics.mean(p[t] for p in chosen), 3) for t in second}
                wins = {t: sum(max(p, key=p.get) == t for p in chosen) for t in second}
                print(f"alpha={alpha:g} beta={beta:g} {'ambiguous' if ambiguous else 'unambiguous'} "
                      f"({len(chosen)} items): mean P {means}; greedy picks {wins}")


if __name__ == "__main__":
    main()
