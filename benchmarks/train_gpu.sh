#!/usr/bin/env bash
# A GPU host's check of the training pipeline: a bootstrap and one ReST iteration of the 135M
# policy (grow on CUDA vLLM with the adapter served by --enable-lora, improve, fine-tune on the
# Trainer) and its value stage, on one GPU; prints the grow's episodes/s and the fine-tunes'
# tokens/s. Sized to finish in a few minutes on one H100-class GPU (an estimate: not yet run).
#   benchmarks/train_gpu.sh /path/to/cuda-vllm-venv [output dir]
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${1:?usage: benchmarks/train_gpu.sh VLLM_VENV [OUT]: a virtualenv with CUDA vLLM}
OUT=${2:-runs/train-gpu-check}
export PYTHONUNBUFFERED=1
python3 -c "import torch; print('torch', torch.__version__, 'gpu', torch.cuda.get_device_name(0))"
started=$(date +%s)
askwise train --output-dir "$OUT" --vllm-venv "$VENV" --bootstrap-items 200 --train-items 200 \
  --iterations 1 --value-items 100 --batch-size 16 --torch-threads 8 --rollout-concurrency 256
echo "wall: $(( $(date +%s) - started )) s"
python3 - "$OUT" <<'PY'
import json, sys
report = json.load(open(f"{sys.argv[1]}/train_report.json"))
print(f"bootstrap fine-tune: {report['bootstrap']['tokens_per_s']:.0f} tokens/s")
for it in report["iterations"]:
    print(f"iteration {it['iteration']}: grow {it['episodes']} episodes at {it['episodes_per_s'] or 0:.1f} "
          f"episodes/s; fine-tune {it['finetune']['tokens_per_s']:.0f} tokens/s")
print("value head:", {k: report["value"][k] for k in ("items", "ridge_strength")})
PY
