"""`askwise calibrate`: measure how the policy acts on an application's own requests over a
grid of costs, and find the costs that give the behaviour the application wants.

    askwise calibrate --requests my-traffic.jsonl --target clarify=0.2,multi=0
    askwise calibrate --requests my-traffic.jsonl --url http://127.0.0.1:8000 \\
        --target clarify=0.1 --write-preset voice-app --presets-file presets.toml

Each line of the requests file is a request as the application sends it to /v1/chat
(`messages`, optional `documents`; costs and presets are ignored, answers are not needed).
Every request is played once per (alpha, beta) of the grid, through a running gateway
(`--url`) or the embedded policy, with greedy decoding and a reply just long enough to show
the action tag. Where the value decision chose (the reply carries `expected`), one reply
says what it chooses at every cost pair: the argmax of each action's expected value at
those costs, exactly as the server takes it, so the request's other pairs are derived
rather than played, and the default grid is a fine one (16 x 12, embedded). Results go to
`<out>.records.jsonl` as they come, so an interrupted run resumes where it stopped. The
calibration file (`--out`) holds each cost pair's action rates and mean action
probabilities, and the fitted monotone curves (`calibration.py`); a PNG of the curves goes
beside it, with the chosen point marked when a target is given.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import sys
from pathlib import Path

from .calibration import ACTIONS, Calibration, CalibrationError, Cell, Solution, parse_target

# From cheaper than any preset to dearer than every one, about evenly in log scale; betas
# closer together between 0.003 and 0.01, where the shipped policy's clarify rate falls from
# about a quarter to nearly none (solutions are only ever measured pairs).
DEFAULT_ALPHAS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5)
DEFAULT_BETAS = (0.001, 0.003, 0.005, 0.007, 0.01, 0.03)
# Where the value decision chooses, every pair after a request's first is derived, not
# played, so a fine grid costs nothing: 16 alphas and 12 betas over the same ranges, evenly
# in log scale (its rates step where an action's expected value overtakes another's).
FINE_ALPHAS = tuple(float(f"{0.01 * 50 ** (k / 15):.3g}") for k in range(16))
FINE_BETAS = tuple(float(f"{0.001 * 30 ** (k / 11):.3g}") for k in range(12))
# Enough for the longest action tag ("#MULTI_ANS\nIf you mean" is 7 tokens for SmolLM2).
REPLY_TOKENS = 8


def register(subcommands) -> None:
    parser = subcommands.add_parser(
        "calibrate", help="find the costs that give target action rates on your own requests",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=Path, required=True, help="JSONL file, one /v1/chat request a line")
    parser.add_argument("--out", type=Path, default=Path("calibration.json"),
                        help="calibration file to write (default: calibration.json)")
    parser.add_argument("--url", default=None, help="a running askwise gateway (default: the embedded policy)")
    parser.add_argument("--model", default=None, help="with --url: the model to ask (default: the gateway's)")
    parser.add_argument("--alphas", type=float, nargs="+", default=None,
                        help="default: 16 from 0.01 to 0.5 where the embedded value decision chooses "
                             "(one reply gives every pair), else 0.01 0.02 0.05 0.1 0.2 0.5")
    parser.add_argument("--betas", type=float, nargs="+", default=None,
                        help="default: 12 from 0.001 to 0.03 with the embedded value decision, "
                             "else 0.001 0.003 0.005 0.007 0.01 0.03")
    parser.add_argument("--limit", type=int, default=None, help="use the first N requests")
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight")
    parser.add_argument("--target", default=None, help="rates to meet, e.g. clarify=0.2,multi=0")
    parser.add_argument("--tolerance", type=float, default=0.05,
                        help="largest gap allowed between a target rate and its prediction")
    parser.add_argument("--write-preset", default=None, metavar="NAME",
                        help="with --target: add the costs found as a preset to --presets-file")
    parser.add_argument("--presets-file", type=Path, default=None, help="TOML presets file to add to")
    parser.add_argument("--adapter", type=Path, default=None, help="embedded: LoRA adapter (default: shipped)")
    parser.add_argument("--base-model", type=Path, default=None, help="embedded: base checkpoint")
    parser.add_argument("--dtype", default="auto", help="embedded: auto, float32 or bfloat16")
    parser.add_argument("--torch-threads", type=int, default=None, help="embedded: torch threads")
    parser.add_argument("--decision", choices=("auto", "value", "policy"), default="auto",
                        help="embedded: what picks the action (askwise serve --decision)")
    parser.set_defaults(handler=run)


def load_requests(path: Path, limit: int | None = None) -> list[dict]:
    """The requests file's lines as /v1/chat bodies (validated), costs and presets dropped."""
    from askwise.server.protocol import ChatRequest

    requests = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            body = {"messages": data["messages"], "documents": data.get("documents") or []}
            ChatRequest.model_validate(body)
        except (ValueError, KeyError, TypeError) as exc:
            raise CalibrationError(f"{path}:{number}: not a /v1/chat request: {exc}") from None
        requests.append(body)
        if limit is not None and len(requests) >= limit:
            break
    if not requests:
        raise CalibrationError(f"{path}: no requests")
    return requests


def request_key(body: dict) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]


def adapter_digest(adapter: Path) -> str:
    """sha256 of an adapter's weights: which policy a calibration was measured on."""
    return hashlib.sha256((Path(adapter) / "adapter_model.safetensors").read_bytes()).hexdigest()


class GatewayTurns:
    """Plays a request at given costs through a running gateway's /v1/chat."""

    def __init__(self, url: str, model: str | None, concurrency: int):
        import httpx

        self.client = httpx.AsyncClient(base_url=url.rstrip("/"), timeout=600,
                                        limits=httpx.Limits(max_connections=concurrency))
        self.model = model
        self.source = {"gateway": url, "model": model}

    async def __call__(self, body: dict, alpha: float, beta: float) -> tuple[str, dict | None, dict | None]:
        request = {**body, "costs": {"alpha": alpha, "beta": beta}, "max_tokens": REPLY_TOKENS}
        if self.model:
            request["model"] = self.model
        response = await self.client.post("/v1/chat", json=request)
        if response.status_code != 200:
            raise CalibrationError(f"the gateway answered {response.status_code}: {response.text[:300]}")
        data = response.json()
        return data["action"], data.get("action_probabilities"), data.get("expected")

    async def aclose(self) -> None:
        await self.client.aclose()


class EmbeddedTurns:
    """Plays a request at given costs through the embedded policy, as `askwise serve` would."""

    def __init__(self, args: argparse.Namespace):
        from askwise.policy.costs import load_presets
        from askwise.server.app import make_engine, policy_adapter
        from askwise.server.decision import value_source
        from askwise.server.metrics import Metrics
        from askwise.server.service import ChatService
        from askwise.server.settings import Settings

        settings = Settings(adapter=args.adapter, base_model=args.base_model, dtype=args.dtype,
                            torch_threads=args.torch_threads, max_batch_size=32, decision=args.decision)
        adapter = policy_adapter(settings)
        self.engine = make_engine(settings)
        self.engine.wait_ready(900)  # the model loads in the engine's thread
        self.service = ChatService(settings, self.engine, load_presets(), Metrics(),
                                   value=value_source(settings, adapter))
        self.source = {"embedded": str(args.adapter or ("base model" if args.base_model else "shipped policy")),
                       "adapter_sha256": adapter_digest(adapter) if adapter else None, "dtype": args.dtype,
                       "decision": "value" if self.service.value is not None else "policy"}

    async def __call__(self, body: dict, alpha: float, beta: float) -> tuple[str, dict | None, dict | None]:
        from askwise.policy.costs import CostOverrides
        from askwise.policy.prompt import Turn
        from askwise.server.protocol import ChatRequest
        from askwise.server.service import TurnRequest, documents_from

        request = ChatRequest.model_validate(body)
        turn = TurnRequest(
            turns=[Turn(m.role, m.content, m.action) for m in request.messages],
            documents=documents_from(request.documents), preset=None,
            costs=CostOverrides(alpha=float(alpha), beta=float(beta)), model=None,
            temperature=0.0, top_p=None, max_tokens=REPLY_TOKENS, seed=None)
        prepared = await self.service.prepare(turn)
        result = self.service.result(prepared, await self.service.run(prepared))
        probabilities = result.action_probabilities
        expected = result.model_dump(mode="json")["expected"]
        return result.action.value, probabilities.model_dump() if probabilities else None, expected

    async def aclose(self) -> None:
        await self.engine.aclose()


async def measure(turns, requests: list[dict], alphas: list[float], betas: list[float],
                  records_path: Path, concurrency: int) -> list[dict]:
    """Every (request, alpha, beta) not yet in `records_path`, played and appended to it.
    Each request's first cost pair runs before its others, so that engines with a prefix
    cache prefill its long shared part once."""
    from tqdm import tqdm

    done = {}
    if records_path.exists():
        for line in records_path.read_text().splitlines():
            try:
                record = json.loads(line)
                done[record["key"], record["alpha"], record["beta"]] = record
            except (ValueError, KeyError, TypeError):
                continue  # a line cut short by an interrupted run
    keys = [request_key(r) for r in requests]
    todo = [(i, a, b) for i in range(len(requests)) for a in alphas for b in betas
            if (keys[i], a, b) not in done]
    # A request already played once by the value decision says what it does at any pair.
    known = {key: row["expected"] for (key, _, _), row in done.items() if row.get("expected")}
    gate = asyncio.Semaphore(concurrency)
    total = len(requests) * len(alphas) * len(betas)
    bar = tqdm(total=total, initial=total - len(todo), unit="turn",
               desc="calibrating", file=sys.stderr)
    with records_path.open("a") as sink:
        def record(i: int, a: float, b: float, action: str, probabilities, expected) -> None:
            row = {"key": keys[i], "alpha": a, "beta": b, "action": action,
                   "probabilities": probabilities, "expected": expected}
            sink.write(json.dumps(row) + "\n")
            sink.flush()
            done[keys[i], a, b] = row
            bar.update()

        def derive(i: int, a: float, b: float) -> bool:
            """Record the pair from the request's expectations, where the value decision gave them."""
            expected = known.get(keys[i])
            if expected:
                record(i, a, b, derived_action(expected, a, b), None, expected)
            return bool(expected)

        async def play(i: int, a: float, b: float) -> None:
            async with gate:
                action, probabilities, expected = await turns(requests[i], a, b)
            record(i, a, b, action, probabilities, expected)
            if expected:
                known[keys[i]] = expected

        # In chunks of `concurrency` requests: their first pairs played, then their other
        # pairs derived where the first gave expectations, else played.
        by_request: dict[int, list[tuple[int, float, float]]] = {}
        for job in todo:
            if not derive(*job):
                by_request.setdefault(job[0], []).append(job)
        order = list(by_request)
        for start in range(0, len(order), concurrency):
            chunk = [by_request[i] for i in order[start:start + concurrency]]
            await asyncio.gather(*(play(*jobs[0]) for jobs in chunk))
            rest = [job for jobs in chunk for job in jobs[1:] if not derive(*job)]
            await asyncio.gather(*(play(*job) for job in rest))
    bar.close()
    return [done[k, a, b] for k in keys for a in alphas for b in betas]


def derived_action(expected: dict, alpha: float, beta: float) -> str:
    """The value decision's action at (alpha, beta), from a reply's `expected` (policy/value.py)."""
    from .costs import Costs
    from .value import Action, Expected, decide

    costs = Costs(alpha=float(alpha), beta=float(beta))
    return decide({Action(a): Expected(**e) for a, e in expected.items()}, costs).value


def build(records: list[dict], alphas: list[float], betas: list[float], source: dict) -> Calibration:
    cells = []
    for a in alphas:
        for b in betas:
            here = [r for r in records if r["alpha"] == a and r["beta"] == b]
            rates = {action: sum(r["action"] == action for r in here) / len(here) for action in ACTIONS}
            with_p = [r["probabilities"] for r in here if r.get("probabilities")]
            mean_p = ({action: sum(p[action] for p in with_p) / len(with_p) for action in ACTIONS}
                      if with_p else None)
            cells.append(Cell(a, b, len(here), rates, mean_p))
    return Calibration(list(alphas), list(betas), cells, source)


def plot(calibration: Calibration, path: Path, solution: Solution | None = None) -> None:
    """Clarify rate against alpha (one line per beta) and multi-answer rate against beta (one
    line per alpha): measured points, fitted curves, and the chosen costs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = {(c.alpha, c.beta): c for c in calibration.cells}
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for j, b in enumerate(calibration.betas):
        line, = left.plot(calibration.alphas, [calibration.fitted["clarify"][i][j]
                                               for i in range(len(calibration.alphas))], label=f"beta {b:g}")
        left.scatter(calibration.alphas, [cells[a, b].rates["clarify"] for a in calibration.alphas],
                     color=line.get_color(), s=12)
    for i, a in enumerate(calibration.alphas):
        line, = right.plot(calibration.betas, calibration.fitted["multi_answer"][i], label=f"alpha {a:g}")
        right.scatter(calibration.betas, [cells[a, b].rates["multi_answer"] for b in calibration.betas],
                      color=line.get_color(), s=12)
    if solution is not None:
        left.scatter([solution.alpha], [solution.predicted["clarify"]], marker="*", s=200, color="black",
                     zorder=5, label=f"chosen: alpha {solution.alpha:g}, beta {solution.beta:g}")
        right.scatter([solution.beta], [solution.predicted["multi_answer"]], marker="*", s=200,
                      color="black", zorder=5)
    for ax, x, y in ((left, "alpha (cost of a question)", "clarify rate"),
                     (right, "beta (cost of a word)", "multi-answer rate")):
        ax.set_xscale("log")
        ax.set_xlabel(x)
        ax.set_ylabel(y)
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("Action rates by cost (points: measured; lines: monotone fit)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_preset(path: Path, name: str, solution: Solution, target: dict[str, float]) -> None:
    """Add (or replace) `[presets.<name>]` in a presets TOML file, with the costs found."""
    import tomllib

    text = path.read_text() if path.exists() else ""
    if name in (tomllib.loads(text).get("presets") or {}):
        raise CalibrationError(f"{path} already has a preset {name!r}; choose another name")
    wanted = ", ".join(f"{a} {r:g}" for a, r in target.items())
    block = (f"\n[presets.{name}]\nalpha = {solution.alpha:g}\nbeta = {solution.beta:g}\n"
             f'rationale = "Calibrated for {wanted} (askwise calibrate)."\n')
    path.write_text(text.rstrip("\n") + ("\n" if text else "") + block)


def run(args: argparse.Namespace) -> int:
    try:
        target = parse_target(args.target) if args.target else None
        if args.write_preset and (target is None or args.presets_file is None):
            raise CalibrationError("--write-preset needs --target and --presets-file")
        requests = load_requests(args.requests, args.limit)
        turns = (GatewayTurns(args.url, args.model, args.concurrency) if args.url else EmbeddedTurns(args))
        fine = turns.source.get("decision") == "value"
        args.alphas = args.alphas or list(FINE_ALPHAS if fine else DEFAULT_ALPHAS)
        args.betas = args.betas or list(FINE_BETAS if fine else DEFAULT_BETAS)

        async def go():
            try:
                return await measure(turns, requests, args.alphas, args.betas,
                                     args.out.with_suffix(".records.jsonl"), args.concurrency)
            finally:
                await turns.aclose()

        records = asyncio.run(go())
        source = {**turns.source, "requests": str(args.requests), "count": len(requests)}
        calibration = build(records, args.alphas, args.betas, source)
        calibration.save(args.out)
        print(f"calibration of {len(requests)} requests x {len(args.alphas) * len(args.betas)} "
              f"cost pairs: {args.out}")
        solution = None
        if target is not None:
            solution = calibration.solve(target, args.tolerance)
            print(f"alpha={solution.alpha:g} beta={solution.beta:g} predicts " +
                  ", ".join(f"{a} {r:.2f}" for a, r in solution.predicted.items()))
            if args.write_preset:
                write_preset(args.presets_file, args.write_preset, solution, target)
                print(f"preset {args.write_preset!r} added to {args.presets_file}")
        plot(calibration, args.out.with_suffix(".png"), solution)
        return 0
    except CalibrationError as exc:
        print(f"askwise calibrate: {exc}", file=sys.stderr)
        return 2
