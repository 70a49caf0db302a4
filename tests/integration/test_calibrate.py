"""`askwise calibrate` end to end on a handful of requests with the embedded policy, and a
gateway that resolves target rates, in presets and in requests, with its calibration."""

import json
import os
import subprocess
import sys

import httpx
import pytest
from helpers import gateway

from askwise.policy.calibration import Calibration

REQUESTS = [
    {"messages": [{"role": "user", "content": "Who won the world cup?"}]},
    {"messages": [{"role": "user", "content": "When did the bridge open?"}],
     "documents": ["The old bridge opened in 1890.", {"title": "New bridge", "text": "It opened in 1995."}]},
    {"messages": [{"role": "user", "content": "What is the capital of France?"}]},
]
GRID = ["--alphas", "0.02", "0.5", "--betas", "0.002", "0.05"]


def calibrate(folder, *args):
    return subprocess.run(
        [sys.executable, "-m", "askwise", "calibrate", "--requests", str(folder / "requests.jsonl"),
         "--out", str(folder / "cal.json"), *GRID, "--dtype", "float32", "--torch-threads", "1", *args],
        capture_output=True, text=True, timeout=900, env={**os.environ, "OMP_NUM_THREADS": "1"})


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory):
    folder = tmp_path_factory.mktemp("calibrate")
    (folder / "requests.jsonl").write_text("".join(json.dumps(r) + "\n" for r in REQUESTS))
    done = calibrate(folder)
    assert done.returncode == 0, done.stderr[-3000:]
    return folder


def test_calibrate_writes_rates_curves_and_resumable_records(calibrated):
    data = json.loads((calibrated / "cal.json").read_text())
    assert len(data["cells"]) == 4 and all(c["n"] == len(REQUESTS) for c in data["cells"])
    # the shipped policy decides by its value head: one reply per request, the other pairs
    # derived from its expectations, which carry no tag probabilities
    assert data["source"]["decision"] == "value"
    for cell in data["cells"]:
        assert sum(cell["rates"].values()) == pytest.approx(1.0)
    assert (calibrated / "cal.png").stat().st_size > 0
    records = (calibrated / "cal.records.jsonl").read_text().splitlines()
    assert len(records) == 4 * len(REQUESTS)
    again = calibrate(calibrated)  # everything is on record: nothing is played again
    assert again.returncode == 0, again.stderr[-3000:]
    assert (calibrated / "cal.records.jsonl").read_text().splitlines() == records
    assert json.loads((calibrated / "cal.json").read_text())["cells"] == data["cells"]


def test_calibrating_the_policys_tag_plays_every_pair_and_averages_its_probabilities(tmp_path):
    (tmp_path / "requests.jsonl").write_text(json.dumps(REQUESTS[1]) + "\n")
    done = calibrate(tmp_path, "--decision", "policy")
    assert done.returncode == 0, done.stderr[-3000:]
    data = json.loads((tmp_path / "cal.json").read_text())
    assert data["source"]["decision"] == "policy"
    for cell in data["cells"]:
        assert sum(cell["mean_probabilities"].values()) == pytest.approx(1.0)


def test_a_target_becomes_a_preset_that_a_gateway_resolves_at_start(calibrated, base_checkpoint, logs):
    cal = Calibration.load(calibrated / "cal.json")
    clarify = round(cal.fitted["clarify"][0][0], 2)  # a measured rate: reachable
    presets = calibrated / "presets.toml"
    done = calibrate(calibrated, "--target", f"clarify={clarify}", "--write-preset", "written",
                     "--presets-file", str(presets))
    assert done.returncode == 0, done.stderr[-3000:]
    solution = cal.solve({"clarify": clarify})
    assert f"alpha = {solution.alpha:g}" in presets.read_text()
    presets.write_text(presets.read_text() + f"\n[presets.voice-app]\ntarget = {{clarify = {clarify}}}\n")

    server = gateway(logs, "--base-model", str(base_checkpoint), "--calibration", str(calibrated / "cal.json"),
                     "--presets-file", str(presets))
    try:
        listed = {p["name"]: p for p in httpx.get(server.url + "/v1/presets").json()["data"]}
        assert listed["voice-app"]["target"] == {"clarify": clarify}
        assert (listed["voice-app"]["alpha"], listed["voice-app"]["beta"]) == (solution.alpha, solution.beta)
        assert listed["written"]["target"] is None and listed["written"]["alpha"] == solution.alpha
        for body in ({"preset": "voice-app"}, {"target": {"clarify": clarify}}):
            reply = httpx.post(server.url + "/v1/chat", timeout=120, json={
                **body, "max_tokens": 8, "messages": REQUESTS[0]["messages"]}).json()
            assert reply["costs"]["alpha"] == solution.alpha and reply["costs"]["beta"] == solution.beta
            assert reply["costs"]["target"] == {"clarify": clarify}
        # The clarify rate farthest from every rate a measured pair predicts: unreachable
        # whatever these requests make the policy do (four rates leave a gap wider than 0.1).
        rates = sorted({cal.predict(a, b)["clarify"] for a in cal.alphas for b in cal.betas})
        candidates = [0.0, 1.0] + [(x + y) / 2 for x, y in zip(rates, rates[1:])]
        far = max(candidates, key=lambda r: min(abs(r - x) for x in rates))
        assert min(abs(far - x) for x in rates) > 0.05
        for target, code in (({"clarify": far}, "target_unreachable"),
                             ({"clarify": 0.8, "multi": 0.5}, "invalid_target")):
            response = httpx.post(server.url + "/v1/chat", timeout=60, json={
                "target": target, "messages": REQUESTS[0]["messages"]})
            assert response.status_code == 400 and response.json()["error"]["code"] == code
    finally:
        server.stop()


def test_targets_need_a_calibration_and_exclude_costs(embedded):
    response = httpx.post(embedded.url + "/v1/chat", timeout=60, json={
        "target": {"clarify": 0.2}, "messages": REQUESTS[0]["messages"]})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "no_calibration" and error["param"] == "target" and "--calibration" in error["message"]
    response = httpx.post(embedded.url + "/v1/chat", timeout=60, json={
        "target": {"clarify": 0.2}, "costs": {"alpha": 0.1}, "messages": REQUESTS[0]["messages"]})
    assert response.status_code == 400 and response.json()["error"]["code"] == "target_with_costs"
