"""`measure` plays one reply per request where the value decision chose, derives the other
cost pairs from its expectations, and on a rerun over a larger grid plays nothing again."""

import asyncio

from askwise.policy.calibrate import derived_action, measure

# Asking gains 0.3 F1 over a direct answer; a list gains 0.1 for 20 more words.
EXPECTED = {"answer": {"f1": 0.4, "words": 3.0, "questions": 0.0},
            "multi_answer": {"f1": 0.5, "words": 23.0, "questions": 0.0},
            "clarify": {"f1": 0.7, "words": 3.0, "questions": 1.0}}


class Replies:
    """Turns as the embedded service returns them under the value decision."""

    def __init__(self):
        self.played = 0

    async def __call__(self, body, alpha, beta):
        self.played += 1
        return derived_action(EXPECTED, alpha, beta), None, EXPECTED


def test_one_reply_per_request_then_none(tmp_path):
    requests = [{"messages": [{"role": "user", "content": f"q{i}"}]} for i in range(3)]
    records = tmp_path / "records.jsonl"
    turns = Replies()
    rows = asyncio.run(measure(turns, requests, [0.1, 0.5], [0.001, 0.03], records, 2))
    assert turns.played == 3 and len(rows) == 12
    assert {(r["alpha"], r["beta"], r["action"]) for r in rows} == {
        (0.1, 0.001, "clarify"), (0.1, 0.03, "clarify"), (0.5, 0.001, "multi_answer"), (0.5, 0.03, "answer")}
    rows = asyncio.run(measure(turns, requests, [0.1, 0.2, 0.5], [0.001, 0.002, 0.03], records, 2))
    assert turns.played == 3 and len(rows) == 27  # the new pairs come from the stored expectations
    assert {r["action"] for r in rows if r["alpha"] == 0.2} == {"clarify"}  # 0.7 - 0.2 > 0.4
