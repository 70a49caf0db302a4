"""What `askwise chat` prints for a reply."""

from askwise.client.chat_cli import describe
from askwise.server.protocol import ChatResponse


def reply(probabilities, expected=None):
    return ChatResponse.model_validate({
        "decision": "value" if expected else "policy", "expected": expected,
        "id": "chat-1", "created": 0, "model": "m", "finish_reason": "stop",
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        "action": "clarify", "message": "Which year?", "interpretations": [],
        "costs": {"alpha": 0.05, "beta": 0.02, "preset": "voice"}, "words": 2, "cost_incurred": 0.05,
        "well_formed": True, "prompt_format": "p", "action_probabilities": probabilities})


def test_the_policys_odds_follow_the_reply_when_the_backend_gives_them():
    text = describe(reply({"answer": 0.3, "multi_answer": 0.05, "clarify": 0.65}))
    assert text.splitlines()[0] == "[CLARIFY] Which year?"
    assert "answer 0.30, list 0.05, ask 0.65" in text.splitlines()[-1]
    assert "odds" not in describe(reply(None))


def test_what_the_value_decision_weighed_is_shown_with_each_actions_value_at_these_costs():
    expected = {"answer": {"f1": 0.4, "words": 3, "questions": 0},
                "multi_answer": {"f1": 0.5, "words": 20, "questions": 0},
                "clarify": {"f1": 0.6, "words": 2, "questions": 1}}
    text = describe(reply(None, expected))
    # 0.4 - 0.02*3 = 0.34; 0.5 - 0.02*20 = 0.10; 0.6 - 0.05 - 0.02*2 = 0.51
    assert "answer F1 0.40, 3 words -> +0.34; list F1 0.50, 20 words -> +0.10; ask F1 0.60, 2 words -> +0.51" in text
    assert "expected" not in describe(reply(None))
