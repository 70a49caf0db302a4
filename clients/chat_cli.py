"""`askwise chat`: talk to the policy from a terminal and see which action it takes.

Each line you type is a user turn. The reply shows its action, the message, and for a
multi-answer one line per reading. After a clarifying question your next line answers it.
Commands (also shown by /help):

    /preset NAME       switch costs to a preset (voice, text, ...)
    /alpha X, /beta X  set one cost explicitly
    /doc TEXT          add a grounding document; /docs lists them, /nodocs clears them
    /new               start a new conversation (keeps costs and documents)
    /quit              leave (Ctrl-D too)

Without --url it starts the embedded default gateway (`askwise serve`) on a free loopback
port and stops it on exit.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

from askwise.net import free_port

from .sdk import AskwiseClient, AskwiseError

HELP = __doc__.split("Commands (also shown by /help):")[1].split("Without --url")[0].rstrip()
LABELS = {"answer": "ANSWER", "multi_answer": "MULTI-ANSWER", "clarify": "CLARIFY"}


def register(subcommands) -> None:
    parser = subcommands.add_parser("chat", help="interactive terminal chat with the policy",
                                    description=__doc__,
                                    formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default=os.environ.get("ASKWISE_URL"),
                        help="a running gateway (default: start the embedded one) [env ASKWISE_URL]")
    parser.add_argument("--api-key", default=os.environ.get("ASKWISE_API_KEY"))
    parser.add_argument("--preset", default="default", help="cost preset to start with")
    parser.add_argument("--alpha", type=float, default=None, help="cost per clarifying question")
    parser.add_argument("--beta", type=float, default=None, help="cost per word of the final answer")
    parser.add_argument("--doc", action="append", default=[], help="grounding document (repeatable)")
    parser.add_argument("--model", default=None, help="model name on the gateway (GET /v1/models)")
    parser.add_argument("--max-tokens", type=int, default=160)
    parser.set_defaults(handler=run)



def start_embedded(out=sys.stderr, timeout_s: float = 600) -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "askwise", "serve", "--port", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    print(f"starting the embedded policy on {url} ...", file=out, flush=True)
    with AskwiseClient(url, max_retries=0) as probe:
        deadline = time.monotonic() + timeout_s
        while not probe.ready():
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise SystemExit("the embedded gateway did not start; run `askwise serve` to see why")
            time.sleep(0.5)
    return process, url


def describe(reply) -> str:
    lines = [f"[{LABELS.get(reply.action.value, reply.action.value)}] {reply.message}"
             if not reply.interpretations else f"[{LABELS['multi_answer']}]"]
    for reading in reply.interpretations:
        lines.append(f"  - {reading.interpretation}: {reading.answer}")
    for number, option in enumerate(reply.options, 1):
        # a number typed back picks the option: the gateway resolves positional replies
        lines.append(f"  {number}) {option}")
    lines.append(f"  (alpha={reply.costs.alpha:g} beta={reply.costs.beta:g} preset={reply.costs.preset}; "
                 f"{reply.words} words, this turn cost {reply.cost_incurred:.3f})")
    if reply.expected:
        # what the decision weighed: each action's expected F1 and words, and its value here
        costs, names = reply.costs, {"answer": "answer", "multi_answer": "list", "clarify": "ask"}
        parts = [f"{names[a]} F1 {e.f1:.2f}, {e.words:.0f} words -> "
                 f"{e.f1 - costs.alpha * e.questions - costs.beta * e.words:+.2f}"
                 for a, e in reply.expected.items()]
        lines.append("  (expected: " + "; ".join(parts) + ")")
    if reply.action_probabilities is not None:
        p = reply.action_probabilities
        lines.append(f"  (the policy's odds: answer {p.answer:.2f}, list {p.multi_answer:.2f}, "
                     f"ask {p.clarify:.2f})")
    return "\n".join(lines)


def _command(line: str, talk, documents: list[str], out) -> bool:
    """Handle a /command; False means quit."""
    name, _, arg = line[1:].partition(" ")
    arg = arg.strip()
    try:
        if name in ("quit", "exit", "q"):
            return False
        if name == "help":
            print(HELP, file=out)
        elif name == "preset" and arg:
            talk.set_costs(preset=arg)
            print(f"preset: {arg}", file=out)
        elif name in ("alpha", "beta") and arg:
            talk.set_costs(**{name: float(arg)})
            print(f"{name} = {float(arg):g}", file=out)
        elif name == "doc" and arg:
            documents.append(arg)
            print(f"{len(documents)} document(s)", file=out)
        elif name == "docs":
            print("\n".join(f"[{i}] {d}" for i, d in enumerate(documents, 1)) or "no documents", file=out)
        elif name == "nodocs":
            documents.clear()
            print("documents cleared", file=out)
        elif name == "new":
            talk.reset()
            print("new conversation", file=out)
        else:
            print(f"unknown command /{name}; /help lists them", file=out)
    except ValueError:
        print(f"/{name} needs a number", file=out)
    return True


def chat_loop(client: AskwiseClient, args, stdin=sys.stdin, out=sys.stdout) -> None:
    documents = list(args.doc)
    options = {"model": args.model} if args.model else {}
    talk = client.conversation(preset=args.preset, max_tokens=args.max_tokens, documents=documents,
                               **options)
    talk.set_costs(alpha=args.alpha, beta=args.beta)
    print("askwise chat: type a question, /help for commands, /quit to leave.", file=out)
    while True:
        prompt = "your answer> " if talk.awaiting_answer else "you> "
        print(prompt, end="", file=out, flush=True)
        line = stdin.readline()
        if not line:
            print(file=out)
            return
        line = line.strip()
        if not line:
            continue
        if line.startswith("/"):
            if not _command(line, talk, documents, out):
                return
            continue
        try:
            reply = talk.send(line)
        except AskwiseError as exc:
            print(f"error: {exc}", file=out)
            continue
        print(describe(reply), file=out, flush=True)
        if reply.action.value != "clarify":
            talk.reset()  # a final answer ends the episode; the next line is a new question


def run(args: argparse.Namespace) -> int:
    process, url = (None, args.url) if args.url else start_embedded()
    try:
        with AskwiseClient(url, api_key=args.api_key) as client:
            chat_loop(client, args)
    except KeyboardInterrupt:
        print()
    finally:
        if process is not None:
            process.terminate()
            process.wait(30)
    return 0
