"""A question that offers one option twice is drawn again, in both endpoints and in streams.

The gateway runs against the scripted backend: its "stammerer" asks "Do you mean 2014 or
2014?" when decoding greedily and offers two years when it samples with an odd seed; its
"stutterer" repeats itself whatever it is asked; "rambler" is cut off at its token limit
when greedy; "wanderer" asks about a film and a song when greedy and about two years when it
samples.
"""

import httpx
import openai
import pytest
from helpers import gateway, metric, sse_events

QUESTION = [{"role": "user", "content": "Who won the world cup?"}]


@pytest.fixture(scope="module")
def redrawing(misbehaving_backend, logs):
    server = gateway(logs, "--backend", "openai", "--backend-url", misbehaving_backend.url + "/v1",
                     "--model", "stammerer", "--question-redraws", "4")
    yield server
    server.stop()


def chat(server, **body):
    response = httpx.post(server.url + "/v1/chat", json={"messages": QUESTION, **body}, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def test_repeated_options_are_drawn_again(redrawing):
    before = metric(redrawing.url, 'askwise_question_redraws_total{outcome="replaced"}')
    body = chat(redrawing, seed=1)
    assert body["action"] == "clarify"
    # Draw k gets seed 1 + 104729 k (k = 1..4): the first is even, the second odd and asked.
    assert body["message"] == f"Do you mean 2014 or {2014 + (1 + 2 * 104729) % 7}?"
    assert metric(redrawing.url, 'askwise_question_redraws_total{outcome="replaced"}') == before + 1


def test_seeded_requests_redraw_reproducibly(redrawing):
    assert chat(redrawing, seed=5)["message"] == chat(redrawing, seed=5)["message"]


def test_a_streamed_question_arrives_checked_and_whole(redrawing):
    with httpx.stream("POST", redrawing.url + "/v1/chat", timeout=30,
                      json={"messages": QUESTION, "stream": True, "seed": 1}) as response:
        assert response.status_code == 200
        events = sse_events(response)
    assert events[0]["type"] == "action" and events[0]["action"] == "clarify"
    deltas = [e["text"] for e in events if isinstance(e, dict) and e["type"] == "delta"]
    final = events[-2]["response"]
    assert deltas == [final["message"]] and "2014 or 2014" not in final["message"]


def test_openai_endpoint_redraws_too(redrawing):
    client = openai.OpenAI(base_url=redrawing.url + "/v1", api_key="unused")
    completion = client.chat.completions.create(model="stammerer", messages=QUESTION, seed=1)
    assert "2014 or 2014" not in completion.choices[0].message.content
    # The usage counts the first reply and the draws up to the one asked (the second), 4
    # tokens each; the draws after it are cancelled.
    assert completion.usage.completion_tokens == 12


def test_a_question_that_keeps_repeating_stands(redrawing):
    before = metric(redrawing.url, 'askwise_question_redraws_total{outcome="kept"}')
    body = chat(redrawing, model="stutterer", seed=1)
    assert body["action"] == "clarify" and body["message"] == "Do you mean 2014 or 2014?"
    assert metric(redrawing.url, 'askwise_question_redraws_total{outcome="kept"}') == before + 1


def test_redraws_can_be_turned_off(misbehaving_backend, logs):
    server = gateway(logs, "--backend", "openai", "--backend-url", misbehaving_backend.url + "/v1",
                     "--model", "stammerer", "--question-redraws", "0")
    try:
        assert chat(server, seed=1)["message"] == "Do you mean 2014 or 2014?"
    finally:
        server.stop()


def test_a_question_cut_off_at_the_token_limit_is_drawn_again(redrawing):
    body = chat(redrawing, model="rambler", seed=1)
    assert body["action"] == "clarify" and body["message"] == "Do you mean 1985 or 1995?"
    assert body["finish_reason"] == "stop"


WORLD_CUPS = ["Mario Götze scored the winner. In 2014, Germany won the world cup in Rio.",
              "France won the world cup in 2018, beating Croatia. Paris celebrated all night."]


def test_a_question_the_documents_do_not_ground_is_drawn_again(redrawing):
    before = metric(redrawing.url, 'askwise_question_redraws_total{outcome="replaced"}')
    body = chat(redrawing, model="wanderer", seed=1, documents=WORLD_CUPS)
    assert body["action"] == "clarify" and body["message"] == "Do you mean 2014 or 2018?"
    assert metric(redrawing.url, 'askwise_question_redraws_total{outcome="replaced"}') == before + 1


def test_without_documents_there_is_nothing_to_ground_in(redrawing):
    body = chat(redrawing, model="wanderer", seed=1)
    assert body["message"] == "Do you mean the film or the song?"
