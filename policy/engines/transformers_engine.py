"""In-process engine: a Hugging Face causal LM on CPU or GPU, with continuous batching.

One worker thread owns the model and runs it one step at a time. Each step is one forward
over the new tokens of every running request, flattened into a single row with no padding:
one token of each request that is decoding, and chunks of the prompts of requests that have
just joined, up to `max_step_tokens` in all (long prompts are prefilled over several steps).
A request joins at the next step after it arrives, if its tokens fit the KV budget
(`kv_cache_tokens`), and leaves the step it finishes or its caller hangs up; requests that do
not fit wait in arrival order. Prompts that start like an earlier one (the same instructions
and documents, or the same question) reuse its cached keys (`kv_cache.py`). Each request samples with its own
parameters and seed, starts with one of its allowed prefixes, stops at its stop strings, and
streams its text as it forms. A request with a `StateDecision` has its prefixes chosen from
the final norm's output at one of its prompt positions, read off the step that computes that
position (a hook on the norm; no second pass), before its first reply token.

transformers' own continuous-batching generator (`generate_batch`) was measured first and is
not used: on a 2-core CPU it ran at 0.70x of this engine's tokens/s on the same prompts
(benchmarks/continuous_batching.py, docs/benchmarks.md), and it does not stream, constrain
the first tokens, stop at strings, or cancel per request.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..hardware import cpu_has_native_bf16, limit_heap_growth
from .base import (
    ChatMessages,
    Completion,
    Engine,
    EngineError,
    EngineRejected,
    EngineUnavailable,
    SamplingParams,
    StreamChunk,
    UnknownModel,
)
from .kv_cache import NAME as RAGGED_ATTENTION
from .kv_cache import DecodeGroup, KVPool, Prefix, PromptChunk, StepPlan, bucket
from .kv_cache import register as register_ragged_attention
from .prefix_choice import PrefixChoice

log = logging.getLogger(__name__)

# A shared prompt prefix shorter than this is not worth a cache entry.
MIN_PREFIX_TOKENS = 16
# A step always carries at least this many prompt tokens, however many requests decode.
MIN_PREFILL_CHUNK = 32


@dataclass(eq=False)
class _Request:
    messages: ChatMessages
    params: SamplingParams
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue
    want_deltas: bool
    cancelled: bool = False
    # Filled by the worker:
    prompt_ids: list[int] = field(default_factory=list)
    out_ids: list[int] = field(default_factory=list)
    text: str = ""  # decoded so far
    sent: int = 0  # characters of `text` already streamed
    # Its place in the KV pool while it runs:
    prefix: Prefix | None = None  # cached leading tokens it attends to
    prefix_len: int = 0
    own_start: int = 0  # its own range: prompt tokens after the prefix, then its reply
    reserved: int = 0
    filled: int = 0  # positions of its own range written so far
    generator: object = None
    choice: PrefixChoice | None = None  # when the caller asked for prefix probabilities
    free: bool = False  # past its allowed prefix: every token is the model's choice
    allowed: tuple[str, ...] = ()  # the prefixes it may start with (a decision narrows them)
    state_index: int | None = None  # prompt position whose hidden state a decision reads
    decision: object = None  # what the decision reported

    def __post_init__(self) -> None:
        self.allowed = self.params.allowed_prefixes

    def send(self, kind: str, payload) -> None:
        try:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, (kind, payload))
        except RuntimeError:  # the caller's event loop is gone
            self.cancelled = True


class TransformersEngine(Engine):
    runs_decisions = True

    def __init__(
        self,
        model_path: str | Path | Callable[[], str | Path],
        *,
        model_name: str = "askwise-default",
        adapter: str | Path | None = None,
        device: str = "auto",
        dtype: str = "auto",
        threads: int | None = 1,
        max_batch_size: int = 32,
        batch_wait_s: float = 0.005,
        max_model_len: int = 2048,
        kv_cache_tokens: int = 16384,
        max_step_tokens: int = 256,
        shape_buckets: bool | None = None,
    ):
        # A callable is resolved in the worker: finding (or converting) the checkpoint can
        # take a while, and the server should answer /healthz meanwhile.
        self.model_path = model_path
        self.adapter = adapter
        self.model_name = model_name
        self.device_name = device
        self.dtype_name = dtype
        self.threads = threads
        self.max_batch_size = max_batch_size
        self.batch_wait_s = batch_wait_s
        self.max_model_len = max_model_len
        if kv_cache_tokens < max_model_len:
            raise ValueError(f"kv_cache_tokens ({kv_cache_tokens}) must hold one whole request "
                             f"(max_model_len {max_model_len})")
        self.kv_cache_tokens = kv_cache_tokens
        self.max_step_tokens = max_step_tokens
        # Pad steps to a few shapes (kv_cache.bucket); None: only where kernels cache per
        # shape, i.e. reduced precision on CPU.
        self._shape_buckets = shape_buckets
        self.shape_buckets = False  # resolved at load
        self._pending: collections.deque[_Request] = collections.deque()
        self._running: list[_Request] = []
        self._cond = threading.Condition()
        self._stopping = False
        self._ready = threading.Event()
        self._load_error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self.waves = 0  # times requests joined the running batch, for tests and benchmarks
        self.steps = 0  # forward passes run
        self.prefix_hits = 0  # requests that reused a cached prompt prefix

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> TransformersEngine:
        """Load the model in the worker thread; returns at once (see `check_ready`)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._worker, name="askwise-engine", daemon=True)
            self._thread.start()
        return self

    def wait_ready(self, timeout: float | None = None) -> None:
        self.start()
        if not self._ready.wait(timeout):
            raise EngineUnavailable("model did not load in time")
        if self._load_error is not None:
            raise EngineUnavailable(f"model failed to load: {self._load_error}")

    def _raise_unless_ready(self) -> None:
        if self._load_error is not None:
            raise EngineUnavailable(f"model failed to load: {self._load_error}")
        if not self._ready.is_set():
            raise EngineUnavailable("model is loading", retry_after=5)

    async def check_ready(self) -> None:
        self._raise_unless_ready()

    @property
    def running(self) -> int:
        """Requests in the batch now. One whose caller hung up counts until the worker's next
        step retires it, which may come after the rest of the batch has finished."""
        return len(self._running)

    async def aclose(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 30)

    async def list_models(self) -> list[str]:
        return [self.model_name]

    # ------------------------------------------------------------------ requests

    def _submit(self, messages, params, model, want_deltas) -> _Request:
        if model not in (None, self.model_name):
            raise UnknownModel(f"model {model!r} is not served here; available: {self.model_name}",
                               param="model")
        self._raise_unless_ready()
        request = _Request(messages, params, asyncio.get_running_loop(), asyncio.Queue(), want_deltas)
        with self._cond:
            if self._stopping:
                raise EngineUnavailable("engine is shutting down")
            self._pending.append(request)
            self._cond.notify()
        return request

    async def stream(self, messages: ChatMessages, params: SamplingParams,
                     model: str | None = None, *, _deltas: bool = True) -> AsyncIterator[StreamChunk]:
        request = self._submit(messages, params, model, _deltas)
        picked = None
        try:
            while True:
                kind, payload = await request.queue.get()
                if kind == "delta":
                    yield StreamChunk(payload, prefix_probabilities=picked)
                elif kind == "choice":
                    picked = payload
                elif kind == "decision":
                    yield StreamChunk("", decision=payload)
                elif kind == "done":
                    yield StreamChunk("", payload)
                    return
                else:
                    raise payload
        finally:
            request.cancelled = True  # a consumer that stops early frees its batch row

    async def complete(self, messages: ChatMessages, params: SamplingParams,
                       model: str | None = None) -> Completion:
        async for chunk in self.stream(messages, params, model, _deltas=False):
            if chunk.completion is not None:
                return chunk.completion
        raise EngineError("generation ended without a result")

    # ------------------------------------------------------------------ worker thread

    def _worker(self) -> None:
        started = time.perf_counter()
        try:
            self._load()
        except BaseException as exc:  # reported through check_ready and every request
            log.exception("loading %s failed", self.model_path)
            self._load_error = exc
            self._ready.set()
            return
        log.info("%s ready in %.1f s: %s%s on %s, %s", self.model_name, time.perf_counter() - started,
                 self.model_path, f" + adapter {self.adapter}" if self.adapter else "", self.device,
                 str(self.model.dtype).replace("torch.", ""))
        self._ready.set()
        while True:
            with self._cond:
                while not self._pending and not self._running and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    break
            if not self._running and len(self._pending) < self.max_batch_size and self.batch_wait_s > 0:
                time.sleep(self.batch_wait_s)  # an idle engine gives near-simultaneous arrivals a moment
            self._admit()
            if self._running:
                self._step()
        for request in [*self._pending, *self._running]:
            request.send("error", EngineUnavailable("engine is shutting down"))

    def _load(self) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if self.threads:
            torch.set_num_threads(self.threads)
        device = self.device_name
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        fast_bf16 = device.startswith("cuda") or cpu_has_native_bf16()
        dtype = {"auto": torch.bfloat16 if fast_bf16 else torch.float32,
                 "float32": torch.float32, "bfloat16": torch.bfloat16,
                 "float16": torch.float16}[self.dtype_name]
        if callable(self.model_path):
            self.model_path = self.model_path()
        self._torch = torch
        self.device = torch.device(device)
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_path)
        self.model = AutoModelForCausalLM.from_pretrained(
            self.model_path, dtype=dtype, attn_implementation=register_ragged_attention())
        if self.adapter is not None:
            from ..checkpoints import apply_adapter

            self.model = apply_adapter(self.model, self.adapter)
        self.model.to(self.device).eval()
        if self.model.config._attn_implementation != RAGGED_ATTENTION:
            raise EngineError(f"{self.model_path}: this architecture does not take a custom attention")
        config = self.model.config
        # The final norm's output is the state a `StateDecision` reads; kept for one step.
        self._hidden = None
        norm = getattr(self.model.get_decoder(), "norm", None)
        self._has_state = norm is not None
        if norm is not None:
            norm.register_forward_hook(lambda module, args, output: setattr(self, "_hidden", output))
        limit_heap_growth()  # steps allocate tensors of ever-changing shapes
        # Reduced-precision CPU kernels cache one compiled kernel per shape (kv_cache.bucket).
        self.shape_buckets = (dtype != torch.float32 and self.device.type == "cpu"
                              if self._shape_buckets is None else self._shape_buckets)
        self.pool = KVPool(torch, layers=config.num_hidden_layers,
                           kv_heads=getattr(config, "num_key_value_heads", config.num_attention_heads),
                           head_dim=getattr(config, "head_dim", None)
                           or config.hidden_size // config.num_attention_heads,
                           tokens=self.kv_cache_tokens, dtype=dtype, device=self.device)
        log.info("KV cache: %d tokens, %.0f MB", self.kv_cache_tokens, self.pool.bytes / 2**20)
        eos = {self.tokenizer.eos_token_id}
        gen_eos = getattr(self.model.generation_config, "eos_token_id", None)
        eos.update(gen_eos if isinstance(gen_eos, list) else [gen_eos])
        self.eos_ids = {i for i in eos if i is not None}
        # Token texts by first character, for prefix constraints matched on text rather than
        # token ids: "#ANSWER " must allow "#ANSWER" followed by the natural token " Paris".
        self._allowed: dict[tuple[str, tuple[str, ...]], list[tuple[int, str]]] = {}
        self._by_first_char: dict[str, list[tuple[int, str]]] = collections.defaultdict(list)
        for token_id in range(len(self.tokenizer)):
            text = self.tokenizer.decode([token_id])
            if text and token_id not in self.eos_ids:
                self._by_first_char[text[0]].append((token_id, text))

    def _prepare(self, request: _Request) -> None:
        request.prompt_ids = self._template_ids(request.messages, generation_prompt=True)
        if request.params.decision is not None:
            request.state_index = self._state_index(request)
        if request.params.prefix_probabilities and request.params.reported_prefixes:
            request.choice = PrefixChoice(request.params.reported_prefixes)
            if request.choice.result is not None:  # one prefix allowed: nothing to pick
                request.send("choice", request.choice.result)
        budget = self.max_model_len - len(request.prompt_ids)
        if budget < request.params.max_tokens:
            raise EngineRejected(
                f"prompt is {len(request.prompt_ids)} tokens; with max_tokens="
                f"{request.params.max_tokens} it exceeds the model's {self.max_model_len}-token context",
                param="messages")

    def _template_ids(self, messages: ChatMessages, generation_prompt: bool) -> list[int]:
        ids = self.tokenizer.apply_chat_template(messages, add_generation_prompt=generation_prompt,
                                                 tokenize=True, return_dict=False)
        if isinstance(ids, dict) or hasattr(ids, "keys"):
            ids = ids["input_ids"]
        return list(ids)

    def _state_index(self, request: _Request) -> int:
        """The prompt position a decision reads: the last token of its leading messages."""
        if not self._has_state:
            raise EngineRejected("this model has no final norm to read a decision's state from")
        leading = request.messages[:request.params.decision.prefix_messages]
        ids = self._template_ids(leading, generation_prompt=False)
        if not ids or request.prompt_ids[:len(ids)] != ids:
            raise EngineRejected("the chat template does not render the decision's leading "
                                 "messages as a prefix of the prompt")
        return len(ids) - 1

    # ------------------------------------------------------------------ scheduling

    def _admit(self) -> None:
        """Move waiting requests into the running batch, in arrival order, while they fit."""
        joined = 0
        while len(self._running) < self.max_batch_size:
            with self._cond:
                if not self._pending:
                    break
                request = self._pending[0]
            if request.cancelled:
                self._pop_pending()
                continue
            if not request.prompt_ids:
                try:
                    self._prepare(request)
                except EngineError as exc:
                    self._pop_pending()
                    request.send("error", exc)
                    continue
                except Exception as exc:  # a malformed conversation must not stop the worker
                    self._pop_pending()
                    request.send("error", EngineRejected(f"could not tokenize the conversation: {exc}"))
                    continue
            if not self._place(request):
                break  # wait for running requests to free their ranges; no overtaking
            self._pop_pending()
            request.generator = self._generator(request.params.seed)
            self._running.append(request)
            joined += 1
        if joined:
            self.waves += 1

    def _pop_pending(self) -> None:
        with self._cond:
            self._pending.popleft()

    def _place(self, request: _Request) -> bool:
        """Reserve the request's own range in the pool, after the longest cached prefix of its
        prompt (always leaving it one prompt token, whose logits give the first reply token)."""
        prefix, shared = self.pool.match(request.prompt_ids)
        shared = min(shared, len(request.prompt_ids) - 1)
        if request.state_index is not None:
            # The state is read off the step that computes it: that position runs here.
            shared = min(shared, request.state_index)
        if shared < MIN_PREFIX_TOKENS:
            prefix, shared = None, 0
        reserved = len(request.prompt_ids) - shared + request.params.max_tokens
        if prefix is not None:
            prefix.refs += 1  # not evicted to make room for its own user
        start = self.pool.allocate(reserved)
        if start is None:
            if prefix is not None:
                prefix.refs -= 1
            return False
        if prefix is not None:
            prefix.last_used = time.monotonic()
            self.prefix_hits += 1
        request.prefix, request.prefix_len = prefix, shared
        request.own_start, request.reserved, request.filled = start, reserved, 0
        return True

    def _release(self, request: _Request) -> None:
        self.pool.release(request.own_start, request.reserved)
        if request.prefix is not None:
            request.prefix.refs -= 1
            request.prefix = None

    def _step(self) -> None:
        """One forward over every running request's next tokens; then sample, stream, retire.
        A failure fails the requests of this step, never the worker."""
        for request in [r for r in self._running if r.cancelled]:
            self._retire(request)
        if not self._running:
            return
        try:
            with self._torch.inference_mode():
                self._forward_and_sample()
        except Exception as exc:
            log.exception("generation failed")
            for request in list(self._running):
                request.send("error", EngineError(f"generation failed: {exc}"))
                self._retire(request)

    def _forward_and_sample(self) -> None:
        torch = self._torch
        plan, inputs, positions, logit_rows, state_rows = self._plan()
        if plan.buckets:  # padding tokens: write nothing, attend to nothing, sampled never
            padding = bucket(len(inputs)) - len(inputs)
            inputs, positions = inputs + [inputs[-1]] * padding, positions + [0] * padding
        self.steps += 1
        logits = self.model(
            input_ids=torch.tensor([inputs], device=self.device),
            position_ids=torch.tensor([positions], device=self.device),
            use_cache=False, askwise_step=plan,
            # (a step that only prefills keeps none)
            logits_to_keep=torch.tensor([i for i, _ in logit_rows], dtype=torch.long, device=self.device),
        ).logits[0]
        hidden, self._hidden = self._hidden, None
        for index, request in state_rows:
            self._decide(request, hidden[0, index])
        rows = [request for _, request in logit_rows]
        for request in rows:
            if not request.out_ids:  # its prompt is whole in the pool now
                self._share_prefix(request)
        tokens = self._pick(rows, logits, [r.generator for r in rows])
        for request, token in zip(rows, tokens):
            if not self._advance(request, token):
                self._retire(request)

    def _decide(self, request: _Request, state) -> None:
        """Run the request's decision on its state; its prefixes are the decision's from now."""
        try:
            allowed, request.decision = request.params.decision.choose(state)
        except Exception as exc:  # a broken decision fails its request, never the step
            log.exception("decision failed")
            request.send("error", EngineError(f"decision failed: {exc}"))
            request.cancelled = True
            return
        request.allowed = tuple(allowed)
        request.send("decision", request.decision)

    def _plan(self):
        """The step's flattened tokens and positions, the attention plan, which tokens'
        logits are sampled (index in the step, request), and which tokens' states a decision
        reads (index in the step, request)."""
        torch, device = self._torch, self.device
        inputs, positions, write, logit_rows, state_rows = [], [], [], [], []
        decoding = [r for r in self._running if self._prompt_done(r) == len(r.prompt_ids)]
        prompting = [r for r in self._running if self._prompt_done(r) < len(r.prompt_ids)]
        plan_groups = []
        if decoding:
            # Each row reads its prefix's keys, then its own: gathered into one padded batch.
            queries, gather, lengths = [], [], []
            for request in decoding:
                queries.append(len(inputs))
                logit_rows.append((len(inputs), request))
                inputs.append(request.out_ids[-1])
                positions.append(request.prefix_len + request.filled)
                write.append(request.own_start + request.filled)
                request.filled += 1
                lengths.append(request.prefix_len + request.filled)
            width = max(lengths)
            for request, length in zip(decoding, lengths):
                start = request.prefix.start if request.prefix else 0
                seen = [*range(start, start + request.prefix_len),
                        *range(request.own_start, request.own_start + request.filled)]
                gather.extend(seen + [seen[-1]] * (width - length))
            plan_groups.append(DecodeGroup(
                queries=torch.tensor(queries, device=device),
                gather=torch.tensor(gather, device=device),
                valid=torch.arange(width, device=device)[None, :]
                < torch.tensor(lengths, device=device)[:, None],
                width=width))
        budget = max(self.max_step_tokens - len(inputs), MIN_PREFILL_CHUNK)
        chunks = []
        for request in prompting:
            if budget <= 0:
                break
            done = self._prompt_done(request)
            n = min(budget, len(request.prompt_ids) - done)
            budget -= n
            chunks.append(PromptChunk(
                q_start=len(inputs), n=n, prefix_start=request.prefix.start if request.prefix else 0,
                prefix_len=request.prefix_len, own_start=request.own_start, before=request.filled))
            if request.state_index is not None and done <= request.state_index < done + n:
                state_rows.append((len(inputs) + request.state_index - done, request))
            inputs.extend(request.prompt_ids[done:done + n])
            positions.extend(range(done, done + n))
            write.extend(range(request.own_start + request.filled, request.own_start + request.filled + n))
            request.filled += n
            if done + n == len(request.prompt_ids):
                logit_rows.append((len(inputs) - 1, request))
        plan = StepPlan(self.pool, torch.tensor(write, device=device), plan_groups, chunks,
                        buckets=self.shape_buckets)
        return plan, inputs, positions, logit_rows, state_rows

    @staticmethod
    def _prompt_done(request: _Request) -> int:
        """Prompt tokens whose keys are in the pool (the prefix's, then its own)."""
        return min(request.prefix_len + request.filled, len(request.prompt_ids))

    def _share_prefix(self, request: _Request) -> None:
        """Cache the request's prompt (all but its last token) for later requests, now that its
        keys exist: the same instructions and documents, or the same whole prompt, come back."""
        length = len(request.prompt_ids) - 1
        if length < MIN_PREFIX_TOKENS or request.prefix_len >= length:
            return
        parts = []
        if request.prefix_len:
            parts.append((request.prefix.start, request.prefix_len))
        parts.append((request.own_start, length - request.prefix_len))
        self.pool.add_prefix(tuple(request.prompt_ids[:length]), parts)

    def _retire(self, request: _Request) -> None:
        self._running.remove(request)
        self._release(request)
        log.debug("request done: %d prompt tokens (%d from a cached prefix), %d generated, "
                  "%d running, step %d", len(request.prompt_ids), request.prefix_len,
                  len(request.out_ids), len(self._running), self.steps)

    def _generator(self, seed: int | None):
        generator = self._torch.Generator(device=self.device)
        if seed is None:
            generator.seed()
        else:
            generator.manual_seed(seed)
        return generator

    def _pick(self, rows: list[_Request], logits, generators) -> list[int]:
        """The next token of every row. Greedy rows share one argmax (one device sync per
        step, not one per row); sampled rows use their own seeded generator."""
        torch = self._torch
        logits = logits.float()
        choosing = {}  # line: the allowed (token id, text) and the model's own probabilities
        for line, request in enumerate(rows):
            allowed = self._prefix_tokens(request)
            if allowed:
                if request.choice is not None and not request.choice.done:
                    # the model's preference among every reported prefix, not only the allowed
                    reported = self._tokens_towards(request.text, request.choice.prefixes)
                    choosing[line] = reported, torch.softmax(logits[line], dim=-1)
                index = torch.tensor([token_id for token_id, _ in allowed], device=logits.device)
                masked = torch.full_like(logits[line], float("-inf"))
                masked[index] = logits[line, index]
                logits[line] = masked
        tokens = torch.argmax(logits, dim=-1).tolist()
        for line, request in enumerate(rows):
            if request.params.temperature > 0:
                tokens[line] = self._sample(logits[line], request.params, generators[line])
        for line, (allowed, probs) in choosing.items():
            self._track_choice(rows[line], allowed, probs, tokens[line])
        return tokens

    def _track_choice(self, request: _Request, allowed, probs, token: int) -> None:
        ids = [token_id for token_id, _ in allowed]
        chances = probs[self._torch.tensor(ids, device=probs.device)].tolist()
        request.choice.step(request.text, [(piece, p) for (_, piece), p in zip(allowed, chances)],
                            (self.tokenizer.decode([token]), float(probs[token])))
        if request.choice.done and request.choice.result is not None:
            request.send("choice", request.choice.result)

    def _sample(self, logits, params: SamplingParams, generator) -> int:
        torch = self._torch
        probs = torch.softmax(logits / params.temperature, dim=-1)
        if params.top_p < 1.0:
            sorted_probs, order = torch.sort(probs, descending=True)
            # Keep the smallest set whose mass reaches top_p (always the most likely token).
            drop = sorted_probs.cumsum(-1) - sorted_probs >= params.top_p
            sorted_probs[drop] = 0.0
            probs = torch.zeros_like(probs).scatter_(0, order, sorted_probs)
        return int(torch.multinomial(probs, 1, generator=generator))

    def _prefix_tokens(self, request: _Request) -> list[tuple[int, str]]:
        """Tokens (id, text) that keep the text on one of the allowed prefixes; [] once free.
        Every request of a kind walks the same few texts, so the answers are kept rather than
        scanned from the vocabulary every step."""
        prefixes = request.allowed
        if request.free or not prefixes or any(request.text.startswith(p) for p in prefixes):
            request.free = True  # a prefix is complete (or none was asked for): up to the model
            return []
        return self._tokens_towards(request.text, prefixes)

    def _tokens_towards(self, text: str, prefixes: tuple[str, ...]) -> list[tuple[int, str]]:
        key = text, prefixes
        if key not in self._allowed:
            if len(self._allowed) >= 4096:
                self._allowed.clear()
            self._allowed[key] = self._scan_prefix_tokens(*key)
        return self._allowed[key]

    def _scan_prefix_tokens(self, text: str, prefixes: tuple[str, ...]) -> list[tuple[int, str]]:
        allowed = set()
        for prefix in prefixes:
            if not prefix.startswith(text):
                continue
            rest = prefix[len(text):]
            allowed.update((token_id, piece) for token_id, piece in self._by_first_char.get(rest[0], ())
                           if rest.startswith(piece) or piece.startswith(rest))
        return sorted(allowed)

    def _advance(self, request: _Request, token: int) -> bool:
        """Record one token; return whether the row goes on."""
        if request.cancelled:
            return False
        finished = token in self.eos_ids
        if not finished:
            request.out_ids.append(token)
            request.text = self.tokenizer.decode(request.out_ids, skip_special_tokens=True)
            cut = min((i for i in (request.text.find(s) for s in request.params.stop) if i >= 0),
                      default=-1)
            if cut >= 0:
                request.text, finished = request.text[:cut], True
        done = finished or len(request.out_ids) >= request.params.max_tokens
        # Hold back a partial UTF-8 character until its last byte arrives, and text that may
        # turn out to be the start of a stop string.
        ready = len(request.text)
        if not done:
            if request.text.endswith("\ufffd"):
                ready = request.sent
            elif request.params.stop:
                ready -= max(len(s) for s in request.params.stop) - 1
        if request.want_deltas and ready > request.sent:
            request.send("delta", request.text[request.sent:ready])
            request.sent = ready
        if done:
            request.send("done", Completion(
                text=request.text, prompt_tokens=len(request.prompt_ids),
                completion_tokens=len(request.out_ids) + int(finished),
                finish_reason="stop" if finished else "length",
                prefix_probabilities=request.choice.result if request.choice else None,
                decision=request.decision))
        return not done
