#!/usr/bin/env bash
# Fine-tune sweep on one GPU: which epochs / learning rate / loss weights make the policy
# read the costs. Every variant is a real `askwise train` run that starts from the same
# bootstrap adapter and re-uses the same grown episodes (the grow is skipped because every
# episode is already in <run>/iter-1/episodes.jsonl), then `first_action_probe.py` measures
# how its first action moves with alpha and beta on AmbigQA dev.
#
#   ASKWISE_BASE_GGUF=/path/SmolLM2-135M-Instruct.Q4_1.gguf \
#     bash dev/gpu_finetune_sweep.sh INPUT_DIR OUT_DIR
#
# INPUT_DIR holds `init/` (the adapter every variant starts from; SWEEP_INIT names another,
# such as the shipped policy, which then need not travel) and `episodes.jsonl` or
# `episodes.jsonl.gz` (a grow made with --train-items 400 and --seed SWEEP_SEED, default 2;
# `askwise train --grow-only` makes one). Each variant comes back as
# OUT_DIR/<name>.tar (adapter in bf16, train report, probe) and one line of OUT_DIR/sweep.json.
# SWEEP_BUDGET_S (default 330) stops starting variants once that many seconds have passed,
# so the sweep fits a time-boxed GPU job; PROBE_ITEMS and PROBE_ALPHAS (space-separated; default: the
# probe's own) size the probe; SWEEP_SMOKE=1 runs a few steps of each on CPU to check
# the script itself.
set -uo pipefail
input=$1 out=$2
init=${SWEEP_INIT:-$input/init}
mkdir -p "$out"
export ASKWISE_CACHE_DIR=${ASKWISE_CACHE_DIR:-/tmp/askwise-cache}
budget=${SWEEP_BUDGET_S:-330}
probe_items=${PROBE_ITEMS:-120}
probe_alphas=${PROBE_ALPHAS:+--alphas $PROBE_ALPHAS}
threads=$(( $(nproc) > 8 ? 8 : $(nproc) ))
started=$(date +%s)

# name epochs learning-rate batch-size action-weight cost-contrast-weight [more train flags],
# most promising first; SWEEP_VARIANTS replaces the list
variants=${SWEEP_VARIANTS:-"e2-lr1e-3-c1 2 1e-3 32 10 1
e4-lr1e-3 4 1e-3 32 10 0
e4-lr3e-4 4 3e-4 32 10 0"}
if [ "${SWEEP_SMOKE:-0}" = 1 ]; then
  variants=$(echo "$variants" | head -2 | awk '{$2 = 0.005; print}')
  probe_items=4
fi

echo "$variants" | while read -r name epochs lr batch weight contrast extra; do
  elapsed=$(( $(date +%s) - started ))
  if [ "$elapsed" -gt "$budget" ]; then echo "skip $name: ${elapsed}s used"; continue; fi
  run=/tmp/sweep/$name
  mkdir -p "$run/iter-1"
  if [ -f "$input/episodes.jsonl.gz" ]; then zcat "$input/episodes.jsonl.gz" > "$run/iter-1/episodes.jsonl"
  else cp "$input/episodes.jsonl" "$run/iter-1/episodes.jsonl"; fi
  t0=$(date +%s)
  python3 -m askwise train --output-dir "$run" --init-adapter "$init" --bootstrap-items 0 \
    --train-items 400 --seed "${SWEEP_SEED:-2}" --epochs "$epochs" --learning-rate "$lr" --batch-size "$batch" \
    --action-loss-weight "$weight" --cost-contrast-weight "$contrast" --torch-threads "$threads" --save-every 100000 $extra \
    || { echo "train $name failed"; continue; }
  t1=$(date +%s)
  python3 dev/first_action_probe.py "$run/adapter" --items "$probe_items" $probe_alphas \
    --json "$run/adapter/probe.json" || { echo "probe $name failed"; continue; }
  python3 - "$run" "$name" "$epochs" "$lr" "$batch" "$weight" "$contrast" "$((t1 - t0))" "$extra" >> "$out/sweep.json" <<'PY'
import json, sys
from pathlib import Path
import torch
from safetensors.torch import load_file, save_file
run, name, epochs, lr, batch, weight, contrast, seconds, extra = sys.argv[1:]
adapter = Path(run) / "adapter"
weights = adapter / "adapter_model.safetensors"
# bf16 halves what travels and what the package ships; LoRA deltas lose nothing that matters
save_file({k: v.to(torch.bfloat16) for k, v in load_file(weights).items()}, weights)
report = json.loads((Path(run) / "train_report.json").read_text())
(adapter / "train_report.json").write_text(json.dumps(report, indent=2) + "\n")
ft = report["iterations"][0]["finetune"]
probe = json.loads((adapter / "probe.json").read_text())["summary"]
print(json.dumps({"name": name, "epochs": float(epochs), "learning_rate": float(lr),
                  "batch_size": int(batch), "action_loss_weight": float(weight),
                  "cost_contrast_weight": float(contrast), "extra_flags": extra,
                  "train_seconds": int(seconds), "steps": ft["steps"], "final_loss": ft["final_loss"],
                  "tokens_per_s": ft["tokens_per_s"], **probe}))
PY
  tar -C "$run" -cf "$out/$name.tar" adapter
  tail -1 "$out/sweep.json"
done
echo "sweep done in $(( $(date +%s) - started ))s"
