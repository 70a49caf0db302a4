"""Readings first through the gateway: a question's options on every endpoint, a reply by
position resolved to its option, and a list built from the readings (--lists readings).

The gateway runs against the scripted backend's "reader", which follows the constraint it is
sent: made to ask it offers "the 2014 cup or the 2018 cup", made to answer it answers the year
in the user's last words, left free it writes its own list for "every" and asks otherwise.
"""

import httpx
import openai
import pytest
from helpers import gateway, metric, sse_events

from askwise.client import AskwiseClient

ASK = [{"role": "user", "content": "Who won the cup?"}]
LIST = [{"role": "user", "content": "Who won every cup?"}]
READINGS = [{"interpretation": "the 2014 cup", "answer": "Germany"},
            {"interpretation": "the 2018 cup", "answer": "France"}]


@pytest.fixture(scope="module")
def readings(misbehaving_backend, logs):
    server = gateway(logs, "--backend", "openai", "--backend-url", misbehaving_backend.url + "/v1",
                     "--model", "reader", "--lists", "readings")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def own_lists(misbehaving_backend, logs):
    server = gateway(logs, "--backend", "openai", "--backend-url", misbehaving_backend.url + "/v1",
                     "--model", "reader")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def value_decides(misbehaving_backend, logs):
    """The value decision from a pooling server ("reader-value"), before any reply token."""
    server = gateway(logs, "--backend", "openai", "--backend-url", misbehaving_backend.url + "/v1",
                     "--model", "reader", "--lists", "readings", "--decision", "value",
                     "--value-url", misbehaving_backend.url + "/v1", "--value-model", "reader-value")
    yield server
    server.stop()


def chat(server, messages, **body):
    response = httpx.post(server.url + "/v1/chat", json={"messages": messages, **body}, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def test_a_question_carries_its_options(readings):
    body = chat(readings, ASK)
    assert body["action"] == "clarify"
    assert body["options"] == ["the 2014 cup", "the 2018 cup"]
    assert chat(readings, LIST)["options"] == []  # only a question has options


def test_a_reply_by_position_reaches_the_policy_as_its_option(readings):
    asked = ASK + [{"role": "assistant", "content": "Do you mean the 2014 cup or the 2018 cup?",
                    "action": "clarify"}]
    assert chat(readings, asked + [{"role": "user", "content": "the second one"}])["message"] == "France"
    assert chat(readings, asked + [{"role": "user", "content": "1"}])["message"] == "Germany"
    # a client that sends the question back as plain text gets the same
    plain = ASK + [{"role": "assistant", "content": "Do you mean the 2014 cup or the 2018 cup?"}]
    assert chat(readings, plain + [{"role": "user", "content": "the last"}])["message"] == "France"


def test_a_list_answers_each_reading_as_after_the_question(readings):
    before = metric(readings.url, 'askwise_lists_total{written_by="readings"}')
    body = chat(readings, LIST)
    assert body["action"] == "multi_answer" and body["well_formed"]
    assert body["interpretations"] == READINGS
    assert body["message"] == "the 2014 cup: Germany\nthe 2018 cup: France"
    assert body["words"] == 8
    # the list's tokens are the question's and the two lines' (4 each from this backend)
    assert body["usage"]["completion_tokens"] >= 12
    assert metric(readings.url, 'askwise_lists_total{written_by="readings"}') == before + 1


def test_without_readings_the_policy_writes_its_own_list(own_lists):
    body = chat(own_lists, LIST)
    assert [r["interpretation"] for r in body["interpretations"]] == ["2018", "2014"]


def test_a_streamed_list_arrives_built_from_the_readings(readings):
    with httpx.stream("POST", readings.url + "/v1/chat", timeout=30,
                      json={"messages": LIST, "stream": True}) as response:
        assert response.status_code == 200
        events = sse_events(response)
    assert events[0]["type"] == "action" and events[0]["action"] == "multi_answer"
    deltas = [e["text"] for e in events if isinstance(e, dict) and e["type"] == "delta"]
    final = events[-2]["response"]
    assert deltas == ["the 2014 cup: Germany\nthe 2018 cup: France"]
    assert final["interpretations"] == READINGS and final["message"] == deltas[0]
    # the policy's own list never reaches the user, not even its first line
    assert all("If you mean" not in d for d in deltas)


def test_the_openai_endpoint_carries_options_and_readings(readings):
    client = openai.OpenAI(base_url=readings.url + "/v1", api_key="unused")
    asked = client.chat.completions.create(model="reader", messages=ASK)
    assert asked.askwise["options"] == ["the 2014 cup", "the 2018 cup"]
    listed = client.chat.completions.create(model="reader", messages=LIST)
    assert listed.choices[0].message.content == "the 2014 cup: Germany\nthe 2018 cup: France"
    assert listed.askwise["interpretations"] == READINGS
    stream = client.chat.completions.create(model="reader", messages=ASK, stream=True)
    chunks = list(stream)
    assert [c.askwise["options"] for c in chunks if getattr(c, "askwise", None)
            and "options" in c.askwise] == [["the 2014 cup", "the 2018 cup"]]


def test_the_sdk_picks_an_option_like_a_button(readings):
    with AskwiseClient(readings.url) as client:
        talk = client.conversation()
        question = talk.send("Who won the cup?")
        assert question.options == ["the 2014 cup", "the 2018 cup"]
        assert talk.pick(0).message == "Germany"
        with pytest.raises(ValueError):
            talk.pick(0)  # the episode ended: no question to answer


def test_a_list_the_value_server_chose_is_built_without_the_policys_own(value_decides,
                                                                        misbehaving_backend):
    own_lists = httpx.get(misbehaving_backend.url + "/stats").json()["own_lists"]
    body = chat(value_decides, LIST)
    assert body["decision"] == "value" and body["action"] == "multi_answer"
    assert body["interpretations"] == READINGS
    # the question and the two lines, 4 tokens each from this backend: no list written first
    assert body["usage"]["completion_tokens"] == 12
    assert httpx.get(misbehaving_backend.url + "/stats").json()["own_lists"] == own_lists
    asked = chat(value_decides, ASK)
    assert asked["action"] == "clarify" and asked["options"] == ["the 2014 cup", "the 2018 cup"]
