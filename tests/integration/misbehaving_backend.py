"""An OpenAI-compatible server that fails on purpose, to test how the gateway copes.

Real vLLM cannot be asked to send garbage, hang or crash on demand; this server can. The
model name picks the failure. One model, "clarifier", behaves instead, deterministically: it
asks a question on the first user turn and answers after the user's reply, so clients can be
tested through a whole clarification round (a question with "every" in it gets a
multi-answer). Two more ask a question that offers one option twice when decoding greedily:
"stammerer" offers two options when it samples with an odd seed, "stutterer" never does.
"rambler" enumerates years until its token limit cuts it off when greedy, and asks a whole
question when it samples. "wanderer" asks about a film and a song when greedy, and about two
years when it samples. "reader" follows the constraint it is sent: made to ask, it offers
"the 2014 cup or the 2018 cup"; made to answer, it answers the year in the user's last words
(a list built from the readings is then two follow-ups); unconstrained, it writes its own list
for a question with "every" in it and asks otherwise. Its value export, "reader-value" on
`/classify`, expects a list to pay for a question with "every" in it and a question otherwise.
Run: python misbehaving_backend.py PORT
"""

import asyncio
import json
import sys

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse

app = FastAPI()
MODELS = ["untagged", "garbage", "slow", "crash", "wait", "midstream-error", "overloaded",
          "slowstream", "clarifier", "echo", "hold", "stammerer", "stutterer", "rambler", "wanderer", "reader",
          "reader-value"]
OPEN_STREAMS = 0
OPEN_HOLDS = 0
OWN_LISTS = 0  # lists "reader" wrote itself


@app.get("/v1/models")
async def models():
    return {"object": "list", "data": [{"id": m, "object": "model"} for m in MODELS]}


def completion(text: str, finish_reason: str = "stop") -> dict:
    return {"id": "x", "object": "chat.completion", "choices": [
        {"index": 0, "message": {"role": "assistant", "content": text},
         "finish_reason": finish_reason}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}}


@app.post("/v1/chat/completions")
async def chat(request: Request):
    body = await request.json()
    model = body["model"]
    if model == "garbage":
        return PlainTextResponse("<html>not json</html>")
    if model == "slow":
        await asyncio.sleep(30)
    if model == "crash":
        return JSONResponse({"error": {"message": "engine died"}}, status_code=500)
    if model == "overloaded":
        return JSONResponse({"error": {"message": "queue full"}}, status_code=503,
                            headers={"Retry-After": "7"})
    if model == "wait":
        await asyncio.sleep(1.5)
    if model == "hold":
        # Like vLLM: generate for up to 30 s, but stop as soon as the client hangs up.
        global OPEN_HOLDS
        OPEN_HOLDS += 1
        try:
            for _ in range(300):
                if await request.is_disconnected():
                    break
                await asyncio.sleep(0.1)
        finally:
            OPEN_HOLDS -= 1
    if model == "echo":
        # Answers with the request's own words after a moment, so concurrent replies that
        # got swapped or mixed are caught.
        await asyncio.sleep(0.2)
        said = [m["content"] for m in body["messages"] if m["role"] == "user"][-1]
        return completion("#ANSWER You said: " + said.splitlines()[0])
    text = "Paris is the capital of France, as everyone knows."
    if model == "clarifier":
        users = [m["content"] for m in body["messages"] if m["role"] == "user"]
        text = ("#CLARIFY Which year do you mean?" if len(users) == 1
                else f"#ANSWER In {users[-1]}, France won.")
        if "every" in users[-1]:
            text = "#MULTI_ANS\nIf you mean 2018: France\nIf you mean 2014: Germany"
    if model in ("stammerer", "stutterer"):
        text = "#CLARIFY Do you mean 2014 or 2014?"
        if model == "stammerer" and body.get("temperature") and (body.get("seed") or 0) % 2:
            text = f"#CLARIFY Do you mean 2014 or {2014 + body['seed'] % 7}?"
    if model == "wanderer":
        text = ("#CLARIFY Do you mean 2014 or 2018?" if body.get("temperature")
                else "#CLARIFY Do you mean the film or the song?")
    if model == "reader":
        text = reader(body)
    finish = "stop"
    if model == "rambler":
        text, finish = "#CLARIFY Do you mean 1985, 1986, 1987, 1988", "length"
        if body.get("temperature"):
            text, finish = "#CLARIFY Do you mean 1985 or 1995?", "stop"
    if not body.get("stream"):
        return completion(text, finish)

    async def slow_events():
        global OPEN_STREAMS
        OPEN_STREAMS += 1
        try:
            for _ in range(300):
                yield "data: " + json.dumps({"choices": [{"index": 0, "delta": {"content": "la "}}]}) + "\n\n"
                await asyncio.sleep(0.1)
            yield "data: [DONE]\n\n"
        finally:
            OPEN_STREAMS -= 1  # runs when the gateway hangs up

    if model == "slowstream":
        return StreamingResponse(slow_events(), media_type="text/event-stream")

    async def events():
        if model in ("clarifier", "stammerer", "stutterer", "rambler", "wanderer", "reader"):
            for piece in (text[:12], text[12:]):
                yield "data: " + json.dumps({"choices": [{"index": 0, "delta": {"content": piece}}]}) + "\n\n"
            yield "data: " + json.dumps({"choices": [{"index": 0, "delta": {},
                                                      "finish_reason": finish}]}) + "\n\n"
            yield "data: [DONE]\n\n"
            return
        yield "data: " + json.dumps({"choices": [{"index": 0, "delta": {"content": "Paris "}}]}) + "\n\n"
        if model == "midstream-error":
            yield "data: " + json.dumps({"error": {"message": "worker lost"}}) + "\n\n"
            return
        yield "data: " + json.dumps({"choices": [{"index": 0, "delta": {"content": "is nice."},
                                                  "finish_reason": "stop"}]}) + "\n\n"
        yield "data: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream")


def reader(body: dict) -> str:
    global OWN_LISTS
    regex = (body.get("structured_outputs") or {}).get("regex", "")
    users = [m["content"] for m in body["messages"] if m["role"] == "user"]
    winners = {"2014": "Germany", "2018": "France"}
    answer = next((f"#ANSWER {w}" for year, w in winners.items() if year in users[-1]), "#ANSWER I do not know")
    if "CLARIFY" in regex and "ANSWER" not in regex:
        return "#CLARIFY Do you mean the 2014 cup or the 2018 cup?"
    if "ANSWER" in regex and "CLARIFY" not in regex and "MULTI" not in regex:
        return answer
    if len(users) > 1:
        return answer
    if "every" in users[-1]:
        OWN_LISTS += 1
        return "#MULTI_ANS\nIf you mean 2018: France\nIf you mean 2014: Germany"
    return "#CLARIFY Do you mean the 2014 cup or the 2018 cup?"


@app.post("/classify")
async def classify(request: Request):
    """vLLM's pooling endpoint as the value export answers it: the head's six raw outputs,
    E[F1] then E[words] for answer, multi-answer and clarify."""
    body = await request.json()
    users = [m["content"] for m in body["messages"] if m["role"] == "user"]
    if "every" in users[-1]:
        probs = [0.2, 0.9, 0.5, 4.0, 8.0, 4.0]
    else:
        probs = [0.2, 0.3, 0.9, 4.0, 8.0, 4.0]
    return {"object": "list", "data": [{"index": 0, "probs": probs, "num_classes": 6}]}


@app.get("/stats")
async def stats():
    return {"open_streams": OPEN_STREAMS, "open_holds": OPEN_HOLDS, "own_lists": OWN_LISTS}


@app.get("/health")
async def health():
    return {}


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
