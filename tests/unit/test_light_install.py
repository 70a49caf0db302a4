"""`pip install askwise` (no extras) gives the SDK and the command's client side: neither
imports anything that only the serve or train extras install."""

import subprocess
import sys
import tomllib
from pathlib import Path

from askwise.cli import EXTRAS

ROOT = Path(__file__).resolve().parents[2]
HEAVY = sorted(set().union(*EXTRAS.values()))

# Runs in a fresh interpreter whose imports of the extras' packages fail, as they would where
# those packages are not installed.
PROBE = f"""
import importlib.abc, sys
class Missing(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {HEAVY!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
sys.meta_path.insert(0, Missing())
import askwise.client
from askwise.client import AskwiseClient, AsyncAskwiseClient
from askwise.cli import build_parser, main
build_parser().parse_args(["chat", "--url", "http://127.0.0.1:1"])
sys.exit(main(["serve"]))
"""


def test_the_client_and_the_command_import_without_the_extras():
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120)
    # `askwise serve` then names the extra to install instead of a traceback.
    assert done.returncode == 1, done.stderr
    assert "pip install 'askwise[serve]'" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_base_dependencies_hold_none_of_the_extras_packages():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    base = {dep.split(">")[0].split("=")[0].split("[")[0].strip().replace("-", "_")
            for dep in project["dependencies"]}
    assert not base & set(HEAVY)
    assert "torch==2.13.0" in project["optional-dependencies"]["serve"]
