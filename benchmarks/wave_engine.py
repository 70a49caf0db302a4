"""The embedded engine as it was before continuous batching: the baseline that
`benchmarks/serving.py --only engines` measures the current engine against, in the same run.

It batches in waves: the worker takes every waiting request (up to `max_batch_size`) and
runs them as one left-padded batch until all finish; requests that arrive meanwhile wait
for the next wave. Not used by askwise itself; `benchmarks/wave_gateway.py` serves it.
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

from askwise.policy.engines.base import (
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
from askwise.policy.hardware import cpu_has_native_bf16

log = logging.getLogger(__name__)


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

    def send(self, kind: str, payload) -> None:
        try:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, (kind, payload))
        except RuntimeError:  # the caller's event loop is gone
            self.cancelled = True


class WaveEngine(Engine):
    def __init__(
        self,
        model_path: str | Path | Callable[[], str | Path],
        *,
        model_name: str = "askwise-default",
        adapter: str | Path | None = None,
        device: str = "auto",
        dtype: str = "auto",
        threads: int | None = 1,
        max_batch_size: int = 8,
        batch_wait_s: float = 0.005,
        max_model_len: int = 2048,
        **_ignored,  # the current engine's settings (KV budget, step size) do not apply
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
        self._pending: collections.deque[_Request] = collections.deque()
        self._cond = threading.Condition()
        self._stopping = False
        self._ready = threading.Event()
        self._load_error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self.waves = 0  # batches run so far, for tests and benchmarks

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> WaveEngine:
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
        try:
            while True:
                kind, payload = await request.queue.get()
                if kind == "delta":
                    yield StreamChunk(payload)
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
                while not self._pending and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    break
            if len(self._pending) < self.max_batch_size and self.batch_wait_s > 0:
                time.sleep(self.batch_wait_s)
            with self._cond:
                wave = [self._pending.popleft()
                        for _ in range(min(self.max_batch_size, len(self._pending)))]
            wave = [r for r in wave if not r.cancelled]
            if wave:
                self._run_wave(wave)
        for request in self._pending:
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
        self.model = AutoModelForCausalLM.from_pretrained(self.model_path, dtype=dtype)
        if self.adapter is not None:
            from askwise.policy.checkpoints import apply_adapter

            self.model = apply_adapter(self.model, self.adapter)
        self.model.to(self.device).eval()
        eos = {self.tokenizer.eos_token_id}
        gen_eos = getattr(self.model.generation_config, "eos_token_id", None)
        eos.update(gen_eos if isinstance(gen_eos, list) else [gen_eos])
        self.eos_ids = {i for i in eos if i is not None}
        self.pad_id = self.tokenizer.pad_token_id
        if self.pad_id is None:
            self.pad_id = min(self.eos_ids)
        # Token texts by first character, for prefix constraints matched on text rather than
        # token ids: "#ANSWER " must allow "#ANSWER" followed by the natural token " Paris".
        self._by_first_char: dict[str, list[tuple[int, str]]] = collections.defaultdict(list)
        for token_id in range(len(self.tokenizer)):
            text = self.tokenizer.decode([token_id])
            if text and token_id not in self.eos_ids:
                self._by_first_char[text[0]].append((token_id, text))

    def _prepare(self, request: _Request) -> None:
        ids = self.tokenizer.apply_chat_template(request.messages, add_generation_prompt=True,
                                                 tokenize=True, return_dict=False)
        if isinstance(ids, dict) or hasattr(ids, "keys"):
            ids = ids["input_ids"]
        request.prompt_ids = list(ids)
        budget = self.max_model_len - len(request.prompt_ids)
        if budget < request.params.max_tokens:
            raise EngineRejected(
                f"prompt is {len(request.prompt_ids)} tokens; with max_tokens="
                f"{request.params.max_tokens} it exceeds the model's {self.max_model_len}-token context",
                param="messages")

    def _run_wave(self, wave: list[_Request]) -> None:
        ready = []
        for request in wave:
            try:
                self._prepare(request)
                ready.append(request)
            except EngineError as exc:
                request.send("error", exc)
            except Exception as exc:  # a malformed conversation must not stop the worker
                request.send("error", EngineRejected(f"could not tokenize the conversation: {exc}"))
        if not ready:
            return
        self.waves += 1
        try:
            with self._torch.inference_mode():
                self._decode(ready)
        except Exception as exc:
            log.exception("generation failed")
            for request in ready:
                request.send("error", EngineError(f"generation failed: {exc}"))

    def _decode(self, rows: list[_Request]) -> None:
        torch = self._torch
        from transformers import DynamicCache

        width = max(len(r.prompt_ids) for r in rows)
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, width - len(r.prompt_ids):] = torch.tensor(r.prompt_ids)
            mask[i, width - len(r.prompt_ids):] = 1
        ids, mask = ids.to(self.device), mask.to(self.device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        generators = [self._generator(r.params.seed) for r in rows]
        cache = DynamicCache(config=self.model.config)
        logits = self.model(input_ids=ids, attention_mask=mask, position_ids=positions,
                            cache=cache, use_cache=True, logits_to_keep=1).logits[:, -1, :]
        active = list(range(len(rows)))  # row index of each line of the batch
        while active:
            tokens = self._pick([rows[i] for i in active], logits, [generators[i] for i in active])
            keep = []
            for line, (i, token) in enumerate(zip(active, tokens)):
                if self._advance(rows[i], token):
                    keep.append(line)
            if not keep:
                break
            if len(keep) < len(active):
                index = torch.tensor(keep, device=self.device)
                cache.batch_select_indices(index)
                mask, positions = mask[index], positions[index]
                tokens = [tokens[line] for line in keep]
                active = [active[line] for line in keep]
            mask = torch.cat([mask, mask.new_ones((len(active), 1))], dim=1)
            positions = positions[:, -1:] + 1
            step_ids = torch.tensor(tokens, device=self.device).unsqueeze(1)
            logits = self.model(input_ids=step_ids, attention_mask=mask, position_ids=positions,
                                cache=cache, use_cache=True, logits_to_keep=1).logits[:, -1, :]

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
        for line, request in enumerate(rows):
            allowed = self._prefix_tokens(request)
            if allowed:
                index = torch.tensor(allowed, device=logits.device)
                masked = torch.full_like(logits[line], float("-inf"))
                masked[index] = logits[line, index]
                logits[line] = masked
        tokens = torch.argmax(logits, dim=-1).tolist()
        for line, request in enumerate(rows):
            if request.params.temperature > 0:
                tokens[line] = self._sample(logits[line], request.params, generators[line])
        return tokens

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

    def _prefix_tokens(self, request: _Request) -> list[int]:
        """Token ids that keep the text on one of the allowed prefixes; [] once free."""
        text, allowed = request.text, set()
        for prefix in request.params.allowed_prefixes:
            if text.startswith(prefix):
                return []  # a prefix is complete: the rest is up to the model
            if not prefix.startswith(text):
                continue
            rest = prefix[len(text):]
            allowed.update(token_id for token_id, piece in self._by_first_char.get(rest[0], ())
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
                finish_reason="stop" if finished else "length"))
        return not done
