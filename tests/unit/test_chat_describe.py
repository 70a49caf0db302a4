"""What `askwise chat` prints for a reply."""

from askwise.client.chat_cli import describe
from askwise.server.protocol import ChatResponse


def reply(probabilities):
    return ChatResponse.model_validate({
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
