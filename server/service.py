"""The chat flow both endpoints share: request -> policy prompt -> engine -> parsed action.

Validation and limits happen before any model work; model names are checked before a
stream starts, and a stream's first chunk is awaited before the HTTP status is sent, so
that a backend that is down or a prompt that is too long still gets its proper 4xx/5xx.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass, field, replace

from askwise.policy.actions import (
    ACTION_PREFIXES,
    ACTION_STOP,
    Action,
    ActionStreamParser,
    ParsedAction,
    action_prefixes,
    action_regex,
    parse_action,
)
from askwise.policy.calibration import Calibration, CalibrationError, parse_target
from askwise.policy.costs import CostOverrides, Costs, Preset, UnknownPresetError, resolve_costs
from askwise.policy.engines import Completion, Engine, EngineError, SamplingParams
from askwise.policy.prompt import (
    PROMPT_FORMAT_VERSION,
    Document,
    Turn,
    allowed_actions,
    questions_asked,
    render_prompt,
)
from askwise.policy.questions import Sources, grade, needs_redraw, redraw_question
from askwise.policy.readings import compose_list, question_readings, resolve_positions
from askwise.policy.reward import count_words, turn_cost
from askwise.policy.value import Expected, decide

from .admission import Admission
from .decision import ValueSource
from .errors import APIError
from .metrics import Metrics
from .protocol import (
    ActionProbabilities,
    AppliedCosts,
    DocumentIn,
    ExpectedOut,
    InterpretationOut,
    PolicyResult,
)
from .settings import Settings

log = logging.getLogger("askwise.server")


@dataclass
class TurnRequest:
    """A chat request from either endpoint, in the policy's terms."""

    turns: list[Turn]
    documents: list[Document]
    preset: str | None
    costs: CostOverrides | None
    model: str | None
    temperature: float | None
    top_p: float | None
    max_tokens: int | None
    seed: int | None
    target: dict[str, float] | None = None  # action rates, instead of costs


@dataclass
class Prepared:
    messages: list[dict[str, str]]
    params: SamplingParams
    costs: Costs
    preset: str
    model: str
    target: dict[str, float] | None = None
    sources: Sources | None = None  # what a question's options are checked against
    turns: list[Turn] = field(default_factory=list)
    documents: list[Document] = field(default_factory=list)
    # The value decision's (action, expectations) when it was taken before generating.
    decided: tuple[Action, dict[Action, Expected]] | None = None


@dataclass
class Reply:
    parsed: ParsedAction
    completion: Completion

    def expected(self, prepared: Prepared) -> dict[Action, Expected] | None:
        """The expectations the value decision chose this reply's action from (in the engine,
        or before it); None where the policy's tag chose."""
        decided = self.completion.decision or prepared.decided
        return decided[1] if decided else None


@dataclass
class ActionEvent:
    """A stream's first event: the action, how likely the policy found each (null when the
    value decision chose before the policy wrote a token), and the value decision's
    expectations."""

    action: Action
    probabilities: ActionProbabilities | None
    expected: dict[str, ExpectedOut] | None = None

    def payload(self) -> dict:
        """The event's fields as both endpoints send them."""
        return {"action": self.action.value,
                "action_probabilities": self.probabilities and self.probabilities.model_dump(),
                "decision": "policy" if self.expected is None else "value",
                "expected": self.expected and {a: e.model_dump() for a, e in self.expected.items()}}


def expected_out(expected: dict[Action, Expected] | None) -> dict[str, ExpectedOut] | None:
    if expected is None:
        return None
    return {a.value: ExpectedOut(f1=round(e.f1, 4), words=round(e.words, 2), questions=e.questions)
            for a, e in expected.items()}


def action_probabilities(by_prefix: dict[str, float] | None) -> ActionProbabilities | None:
    """The engine's probabilities of the allowed reply prefixes, by action."""
    if by_prefix is None:
        return None
    return ActionProbabilities(**{a.value: by_prefix.get(ACTION_PREFIXES[a], 0.0) for a in Action})


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


def documents_from(items: list[DocumentIn | str]) -> list[Document]:
    return [Document(text=d) if isinstance(d, str) else Document(text=d.text, title=d.title)
            for d in items]


class ChatService:
    def __init__(self, settings: Settings, engine: Engine, presets: dict[str, Preset], metrics: Metrics,
                 calibration: Calibration | None = None, value: ValueSource | None = None):
        self.settings = settings
        self.engine = engine
        # A head runs inside an engine that runs decisions; a value server serves any engine.
        runnable = value is not None and (value.client is not None or engine.runs_decisions)
        self.value = value if runnable else None
        self.presets = presets
        self.metrics = metrics
        self.calibration = calibration
        self._solved: dict[tuple, Costs] = {}
        self.admission = Admission(
            settings.max_in_flight, settings.max_queued, settings.queue_timeout_s,
            on_change=self._admission_changed)

    def _admission_changed(self, in_flight: int, queued: int) -> None:
        self.metrics.in_flight.set(in_flight)
        self.metrics.queued.set(queued)

    # ------------------------------------------------------------------ validation

    def _check_limits(self, request: TurnRequest) -> None:
        s = self.settings
        if len(request.turns) > s.max_messages:
            raise APIError(400, f"too many messages: {len(request.turns)} > {s.max_messages}",
                           param="messages", code="too_many_messages")
        if len(request.documents) > s.max_documents:
            raise APIError(400, f"too many documents: {len(request.documents)} > {s.max_documents}",
                           param="documents", code="too_many_documents")
        for i, turn in enumerate(request.turns):
            if len(turn.content) > s.max_message_chars:
                raise APIError(400, f"message {i} is {len(turn.content)} characters; the limit is "
                               f"{s.max_message_chars}", param=f"messages.{i}.content",
                               code="message_too_long")
        for i, doc in enumerate(request.documents):
            if len(doc.text) + len(doc.title) > s.max_document_chars:
                raise APIError(400, f"document {i} is longer than {s.max_document_chars} characters",
                               param=f"documents.{i}", code="document_too_long")
        total = sum(len(t.content) for t in request.turns)
        total += sum(len(d.text) + len(d.title) for d in request.documents)
        if total > s.max_total_chars:
            raise APIError(400, f"messages and documents total {total} characters; the limit is "
                           f"{s.max_total_chars}", param="messages", code="request_too_long")
        users = [t for t in request.turns if t.role == "user"]
        if not users or not users[-1].content.strip():
            raise APIError(400, "the conversation needs a non-empty user message",
                           param="messages", code="no_user_message")
        if request.turns[-1].role != "user":
            raise APIError(400, "the last message must be the user's: the policy acts on a user turn",
                           param="messages", code="last_message_not_user")
        if request.max_tokens is not None and request.max_tokens > s.max_tokens_limit:
            raise APIError(400, f"max_tokens is {request.max_tokens}; the limit is {s.max_tokens_limit}",
                           param="max_tokens", code="max_tokens_too_large")

    async def prepare(self, request: TurnRequest) -> Prepared:
        self._check_limits(request)
        try:
            costs, preset = resolve_costs(self.presets, request.preset, request.costs)
        except UnknownPresetError as exc:
            raise APIError(400, str(exc), param="preset", code="unknown_preset") from None
        target = self.presets[preset].target if request.costs is None else None
        if request.target is not None:
            if request.costs is not None:
                raise APIError(400, "give costs or a target, not both", param="target",
                               code="target_with_costs")
            try:
                target = parse_target(request.target)
            except CalibrationError as exc:
                raise APIError(400, str(exc), param="target", code="invalid_target") from None
            costs = self._solve(target)
        try:
            models = await self.engine.list_models()
        except EngineError as exc:
            raise APIError.from_engine(exc) from None
        model = request.model or self.settings.model or models[0]
        if model not in models:
            raise APIError(404, f"model {model!r} does not exist; available: {', '.join(models)}",
                           param="model", code="model_not_found")
        actions = allowed_actions(request.turns, self.settings.max_questions)
        params = SamplingParams(
            max_tokens=request.max_tokens or self.settings.default_max_tokens,
            temperature=(self.settings.default_temperature if request.temperature is None
                         else request.temperature),
            top_p=1.0 if request.top_p is None else request.top_p,
            seed=request.seed,
            allowed_prefixes=action_prefixes(actions),
            regex=action_regex(actions),
            stop=ACTION_STOP,
            prefix_probabilities=self.settings.action_probabilities,
        )
        turns = resolve_positions(request.turns)
        messages = render_prompt(turns, costs, request.documents,
                                 max_questions=self.settings.max_questions)
        prepared = Prepared(messages, params, costs, preset, model, target,
                            Sources.of(turns, request.documents), turns, request.documents)
        if questions_asked(request.turns) == 0:
            if self.value is None:
                self.metrics.decisions.labels("policy").inc()
            else:
                await self._decide_by_value(prepared, actions)
        return prepared

    async def _decide_by_value(self, prepared: Prepared, actions: tuple[Action, ...]) -> None:
        """Set up the value decision of an episode's opening turn (policy/value.py): inside
        an engine that runs it on its own prefill, else from the value server, with the
        reply then forced to the action chosen. Either way the policy's own probabilities of
        each action are still reported. A value server that fails leaves the turn to the
        policy's tag (the response says `decision: policy`): a decision by the tag beats an
        error for a request the generation server can still answer."""
        params = replace(prepared.params, choice_prefixes=prepared.params.allowed_prefixes)
        if self.value.head is not None and self.engine.runs_decisions:
            report = lambda action, expected: (action, expected)  # noqa: E731
            prepared.params = replace(params, decision=self.value.head.decision(
                prepared.costs, actions, len(prepared.messages) - 1, report))
            self.metrics.decisions.labels("value").inc()
            return
        try:
            expected = await self.value.expected(prepared.messages, actions)
        except EngineError as exc:
            self.metrics.backend_errors.labels(exc.code).inc()
            self.metrics.decisions.labels("policy_fallback").inc()
            log.warning("value server failed (%s); the policy's tag decides this turn", exc.message)
            return
        self.metrics.decisions.labels("value").inc()
        action = decide(expected, prepared.costs)
        prepared.decided = action, expected
        prepared.params = replace(params, allowed_prefixes=action_prefixes((action,)),
                                  regex=action_regex((action,)))

    def _solve(self, target: dict[str, float]) -> Costs:
        """The costs the calibration gives for `target`, worked out once per target."""
        if self.calibration is None:
            raise APIError(400, "this server has no calibration, so it cannot turn target rates into "
                           "costs: start it with --calibration FILE (askwise calibrate writes one), "
                           "or send costs", param="target", code="no_calibration")
        key = tuple(sorted(target.items()))
        if key not in self._solved:
            try:
                solution = self.calibration.solve(target)
            except CalibrationError as exc:
                raise APIError(400, str(exc), param="target", code="target_unreachable") from None
            if len(self._solved) >= 1024:
                self._solved.clear()
            self._solved[key] = Costs(alpha=solution.alpha, beta=solution.beta)
        return self._solved[key]

    # ------------------------------------------------------------------ running

    def result(self, prepared: Prepared, reply: Reply) -> PolicyResult:
        parsed = reply.parsed
        if not parsed.well_formed:
            self.metrics.malformed.inc()
        return PolicyResult(
            action=parsed.action,
            message=parsed.message,
            interpretations=[InterpretationOut(interpretation=i.interpretation, answer=i.answer)
                             for i in parsed.interpretations],
            options=question_readings(parsed.message) if parsed.action is Action.CLARIFY else [],
            costs=AppliedCosts(alpha=prepared.costs.alpha, beta=prepared.costs.beta,
                               preset=prepared.preset, target=prepared.target),
            words=count_words(parsed.message),
            cost_incurred=turn_cost(parsed.action, parsed.message, prepared.costs),
            well_formed=parsed.well_formed,
            prompt_format=PROMPT_FORMAT_VERSION,
            action_probabilities=action_probabilities(reply.completion.prefix_probabilities),
            decision="policy" if reply.expected(prepared) is None else "value",
            expected=expected_out(reply.expected(prepared)),
        )

    def _count_tokens(self, completion: Completion) -> None:
        self.metrics.tokens.labels("prompt").inc(completion.prompt_tokens)
        self.metrics.tokens.labels("completion").inc(completion.completion_tokens)

    def _backend_failure(self, exc: EngineError) -> APIError:
        self.metrics.backend_errors.labels(exc.code).inc()
        return APIError.from_engine(exc)

    async def _next(self, chunks):
        """The next chunk, or None at the end; engine errors become API errors."""
        try:
            return await anext(chunks)
        except StopAsyncIteration:
            return None
        except EngineError as exc:
            raise self._backend_failure(exc) from None

    async def run(self, prepared: Prepared) -> Reply:
        if prepared.decided is not None and self._composes(prepared.decided[0], prepared):
            # A value server chose the list before any token: the user gets the list built from
            # the readings, so the policy does not write one of its own first.
            return await self._listed(prepared, None)
        if prepared.params.decision is not None and self._composes(Action.MULTI_ANSWER, prepared):
            # The engine's value head decides after its prefill, before any token; the stream
            # stops there when it chose a list built from the readings, where a plain completion
            # would have the policy write a list of its own first.
            async with aclosing(await self.open_stream(prepared)) as events:
                async for kind, value in events:
                    if kind == "done":
                        return value
        try:
            completion = await self.engine.complete(prepared.messages, prepared.params, prepared.model)
        except EngineError as exc:
            raise self._backend_failure(exc) from None
        self._count_tokens(completion)
        return await self._checked(prepared, Reply(parse_action(completion.text), completion))

    def _composes(self, action: Action | None, prepared: Prepared) -> bool:
        """Whether this turn's list is built from the readings: an opening turn's (a list after
        a question answers what the user said, and the question budget is spent)."""
        return (action is Action.MULTI_ANSWER and self.settings.lists == "readings"
                and questions_asked(prepared.turns) == 0)

    async def _checked(self, prepared: Prepared, reply: Reply) -> Reply:
        """The reply, with a question nobody can answer (an option twice, cut off at the token
        limit, or options the documents do not tell apart) drawn again (policy/questions.py).

        A backend failure during the redraw keeps the original question: the request had a
        reply already, and a worse question beats an error.
        """
        if self._composes(reply.parsed.action, prepared):
            return await self._listed(prepared, reply)
        draws, sources = self.settings.question_redraws, prepared.sources
        if not draws or not needs_redraw(reply.parsed, reply.completion, sources):
            return reply
        try:
            redraw = await redraw_question(self.engine, prepared.messages, prepared.params,
                                           prepared.model, draws, sources,
                                           grade(reply.parsed, reply.completion, sources))
        except EngineError as exc:
            self.metrics.backend_errors.labels(exc.code).inc()
            self.metrics.redraws.labels("kept").inc()
            return reply
        self.metrics.tokens.labels("completion").inc(redraw.completion_tokens)
        self.metrics.redraws.labels("replaced" if redraw.parsed else "kept").inc()
        tokens = reply.completion.completion_tokens + redraw.completion_tokens
        if redraw.parsed is None:
            return Reply(reply.parsed, replace(reply.completion, completion_tokens=tokens))
        # The action, its probabilities and its decision are the first reply's; only the
        # question changed.
        completion = replace(redraw.completion, completion_tokens=tokens,
                             prompt_tokens=reply.completion.prompt_tokens,
                             prefix_probabilities=reply.completion.prefix_probabilities,
                             decision=reply.completion.decision)
        return Reply(redraw.parsed, completion)

    async def _listed(self, prepared: Prepared, reply: Reply | None,
                      started: Completion | None = None) -> Reply:
        """The multi-answer built from the readings (policy/readings.py): each option of the
        policy's question answered as after a user picks it. Where the question offers fewer
        than two options, the policy's own list: `reply`, or generated here when a stream
        stopped the policy at its tag (`reply` None; `started` then holds what the stream
        reported: the action's probabilities and the value decision)."""
        started = started or (reply and reply.completion)
        try:
            composed = await compose_list(
                self.engine, prepared.turns, prepared.documents, prepared.costs, prepared.params,
                prepared.model, self.settings.max_questions, self.settings.question_redraws)
            if composed is None and reply is None:
                own = replace(prepared.params, allowed_prefixes=action_prefixes((Action.MULTI_ANSWER,)),
                              regex=action_regex((Action.MULTI_ANSWER,)), choice_prefixes=(),
                              decision=None, prefix_probabilities=False)
                completion = await self.engine.complete(prepared.messages, own, prepared.model)
                self._count_tokens(completion)
                reply = Reply(parse_action(completion.text), completion)
        except EngineError as exc:
            if reply is None:
                raise self._backend_failure(exc) from None
            self.metrics.backend_errors.labels(exc.code).inc()
            composed = None
        self.metrics.lists.labels("model" if composed is None else "readings").inc()
        if composed is None:
            return Reply(reply.parsed, replace(
                reply.completion, prefix_probabilities=started and started.prefix_probabilities,
                decision=started and started.decision))
        self.metrics.tokens.labels("prompt").inc(composed.prompt_tokens)
        self.metrics.tokens.labels("completion").inc(composed.completion_tokens)
        spent = reply.completion.completion_tokens if reply else 0
        completion = Completion(composed.parsed.raw, composed.prompt_tokens,
                                spent + composed.completion_tokens, "stop",
                                prefix_probabilities=started and started.prefix_probabilities,
                                decision=started and started.decision)
        return Reply(composed.parsed, completion)

    async def open_stream(self, prepared: Prepared) -> AsyncIterator[tuple[str, object]]:
        """Start generating and wait for the first chunk, so that errors get an HTTP status.

        Returns an iterator of events: ("action", ActionEvent) once the tag is known,
        ("delta", str) for user-visible text, and finally ("done", Reply).
        """
        chunks = self.engine.stream(prepared.messages, prepared.params, prepared.model)
        first = await self._next(chunks)
        return self._events(first, chunks, prepared)

    async def _events(self, chunk, chunks, prepared: Prepared) -> AsyncIterator[tuple[str, object]]:
        parser = ActionStreamParser()
        announced = False
        # A question is held until it is whole: one nobody can answer is drawn again.
        holding = False
        redraws = bool(self.settings.question_redraws)

        def held(action: Action | None) -> bool:
            # A question is held until checked, a list built from the readings until built.
            return (action is Action.CLARIFY and redraws) or self._composes(action, prepared)

        composing = False  # the list is built from the readings, not from this stream
        probabilities, engine_decision = None, None

        def decided(action: Action, expected: dict[Action, Expected]) -> tuple[str, ActionEvent]:
            nonlocal announced, holding, composing
            announced, holding, composing = True, held(action), self._composes(action, prepared)
            return "action", ActionEvent(action, None, expected_out(expected))

        try:
            if prepared.decided is not None:  # chosen before the reply: it goes out first
                yield decided(*prepared.decided)
            while chunk is not None and not composing:
                if chunk.decision is not None:  # chosen in the engine, before any reply token
                    if not announced:
                        yield decided(*chunk.decision)
                        engine_decision = chunk.decision
                    chunk = await self._next(chunks)
                    continue
                if chunk.completion is not None:
                    tail, parsed = parser.finish()
                    if not announced:  # the policy's tag chose (a value decision went out first)
                        yield "action", ActionEvent(parsed.action, action_probabilities(
                            chunk.completion.prefix_probabilities))
                    self._count_tokens(chunk.completion)
                    reply = Reply(parsed, chunk.completion)
                    if holding or not announced:
                        # Nothing of this message went out yet: the whole, checked one goes.
                        reply = await self._checked(prepared, reply)
                        tail = reply.parsed.message
                    if tail:
                        yield "delta", tail
                    yield "done", reply
                    return
                delta = parser.feed(chunk.text)
                if not announced and parser.action is not None:
                    announced = True
                    probabilities = chunk.prefix_probabilities
                    yield "action", ActionEvent(parser.action, action_probabilities(probabilities))
                    holding = held(parser.action)
                    composing = self._composes(parser.action, prepared)
                if delta and not holding:
                    yield "delta", delta
                if not composing:
                    chunk = await self._next(chunks)
            if not composing:
                raise APIError(502, "the backend ended the stream without a final result",
                               code="backend_error")
        finally:
            await chunks.aclose()
        # A list built from the readings: the policy's own list is not what the user gets, so
        # it stopped at the tag (or before any token, where the value decision chose).
        started = Completion("", 0, 0, "stop", prefix_probabilities=probabilities,
                             decision=engine_decision)
        reply = await self._listed(prepared, None, started)
        yield "delta", reply.parsed.message
        yield "done", reply


def now() -> int:
    return int(time.time())
