"""The app factory: routers, middleware and every exception handler, wired in one place."""

from __future__ import annotations

import hmac
import logging
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from starlette.exceptions import HTTPException as StarletteHTTPException

from askwise import __version__
from askwise.policy.calibration import Calibration
from askwise.policy.costs import load_presets
from askwise.policy.engines import Engine
from askwise.policy.engines.replicas import ReplicaSet

from .decision import value_source
from .errors import APIError, error_response, install_error_handlers
from .metrics import Metrics
from .protocol import ErrorDetail, ErrorResponse
from .routes import chat, demo, info, openai_compat
from .service import ChatService
from .settings import Settings

log = logging.getLogger("askwise.server")

DEFAULT_MODEL_NAME = "askwise-default"


def policy_adapter(settings: Settings) -> Path | None:
    """The adapter the embedded engine merges: the one asked for, else the shipped policy,
    which was trained on the default base (so another --base-model gets none)."""
    from askwise.policy.checkpoints import default_adapter

    if settings.adapter is not None:
        return settings.adapter
    if settings.base_model is None and not settings.base_only:
        return default_adapter()
    return None


def make_engine(settings: Settings) -> Engine:
    """The engine the settings ask for. The embedded one loads (and on first use converts)
    its model in a background thread, so the server answers /healthz while it does."""
    if settings.backend == "openai":
        from askwise.policy.engines.openai_engine import OpenAIEngine
        urls = settings.backend_urls()
        if not urls:
            raise ValueError("--backend openai needs --backend-url (ASKWISE_BACKEND_URL)")
        if settings.base_model or settings.adapter:
            # The backend serves its own weights; ignoring these would serve the wrong policy.
            raise ValueError("--base-model and --adapter apply to the embedded engine; with "
                             "--backend openai serve them in vLLM (askwise vllm-cpu --adapter)")
        return ReplicaSet({url: OpenAIEngine(
            url, api_key=settings.backend_api_key, default_model=settings.model,
            structured_outputs=settings.structured_outputs, send_seeds=settings.backend_seeds,
            connect_timeout_s=settings.backend_connect_timeout_s, timeout_s=settings.backend_timeout_s,
            max_connections=settings.max_in_flight) for url in urls},
            probe_interval_s=settings.backend_probe_interval_s)

    from askwise.policy.checkpoints import check_prompt_format, ensure_base_checkpoint
    from askwise.policy.engines.transformers_engine import TransformersEngine

    def checkpoint() -> Path:
        path = settings.base_model or ensure_base_checkpoint()
        check_prompt_format(path)
        return Path(path)

    return TransformersEngine(
        checkpoint, model_name=settings.model or DEFAULT_MODEL_NAME, adapter=policy_adapter(settings),
        device=settings.device, dtype=settings.dtype, threads=settings.torch_threads,
        max_batch_size=settings.max_batch_size,
        batch_wait_s=settings.batch_wait_ms / 1000, max_model_len=settings.max_model_len,
        kv_cache_tokens=max(settings.kv_cache_tokens, settings.max_model_len),
        max_step_tokens=settings.max_step_tokens,
    ).start()


class _Guard:
    """ASGI middleware for what must happen before a body is read: the API key, and the body
    size (checked on Content-Length and again while the body streams in)."""

    # Liveness alone answers without a key: an orchestrator restarts what does not answer it.
    OPEN_PATHS = frozenset({"/healthz"})

    def __init__(self, app, settings: Settings):
        self.app = app
        self.max_body = settings.max_body_bytes
        self.keys = [f"Bearer {key.get_secret_value()}".encode() for key in settings.api_keys]

    def _authorized(self, given: bytes) -> bool:
        # Every key is compared, in constant time, so timing tells nothing about which is close.
        matches = [hmac.compare_digest(given, key) for key in self.keys]
        return any(matches)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or ())
        if self.keys and scope["path"] not in self.OPEN_PATHS:
            if not self._authorized(headers.get(b"authorization", b"")):
                return await error_response(APIError(
                    401, "missing or wrong API key (Authorization: Bearer <key>)",
                    code="invalid_api_key"))(scope, receive, send)
        message = f"request body is larger than {self.max_body} bytes"
        try:
            declared = int(headers.get(b"content-length", b"0"))
        except ValueError:
            declared = 0
        if declared > self.max_body:
            return await error_response(APIError(413, message, code="request_too_large"))(
                scope, receive, send)
        seen = 0

        async def counted_receive():
            nonlocal seen
            event = await receive()
            if event["type"] == "http.request":
                seen += len(event.get("body", b""))
                if seen > self.max_body:
                    # An HTTPException, because FastAPI turns any other error raised while
                    # it reads the body into a generic 400.
                    raise StarletteHTTPException(413, message)
            return event

        return await self.app(scope, counted_receive, send)


def policy_calibration(settings: Settings, decision: str) -> Calibration | None:
    """The calibration asked for, else the one shipped with the default policy when the
    embedded engine serves that policy with the decision it was measured with (`decision`:
    value or policy): rates measured on one policy or decision say nothing of another."""
    from askwise.policy.checkpoints import default_adapter

    if settings.calibration is not None:
        return Calibration.load(settings.calibration)
    shipped = default_adapter()
    if settings.backend == "embedded" and shipped is not None and policy_adapter(settings) == shipped:
        path = shipped / "calibration.json"
        if path.exists():
            calibration = Calibration.load(path)
            if calibration.source.get("decision", "policy") == decision:
                return calibration
    return None


def build_app(settings: Settings | None = None, engine: Engine | None = None) -> FastAPI:
    settings = settings or Settings()
    value = value_source(settings, policy_adapter(settings) if settings.backend == "embedded" else None)
    calibration = policy_calibration(settings, "value" if value is not None else "policy")
    presets = load_presets(settings.presets_file, calibration)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        service = ChatService(settings, engine or make_engine(settings), presets, Metrics(), calibration,
                              value)
        if isinstance(service.engine, ReplicaSet):
            service.metrics.watch_replicas(service.engine.replicas)
        app.state.service = service
        log.info("askwise %s serving backend=%s on %s:%s, decision by %s", __version__,
                 settings.backend, settings.host, settings.port,
                 "expected value" if service.value is not None else "the policy's tag")
        try:
            yield
        finally:
            await app.state.service.engine.aclose()
            if value is not None:
                await value.aclose()

    app = FastAPI(title="askwise", version=__version__, lifespan=lifespan,
                  description="Steerable clarification policy: answer, answer every reading, or ask.")
    for module in (chat, openai_compat, info, demo):
        app.include_router(module.router)
    install_error_handlers(app)
    app.add_middleware(_Guard, settings=settings)
    _document_errors(app)
    return app


_ERRORS = {
    "400": "Invalid request (the body, a limit, a preset)", "401": "Missing or wrong API key",
    "404": "Unknown model", "413": "Body larger than max_body_bytes",
    "429": "Admission limit reached (Retry-After says when to retry)",
    "502": "The backend failed or answered garbage", "503": "Backend down or loading, or draining",
    "504": "The backend took longer than backend_timeout_s",
}


def _document_errors(app: FastAPI) -> None:
    """The schema says what the server does: errors are 4xx/5xx in the OpenAI shape (not
    FastAPI's 422 validation body), and every route but liveness may answer 401."""
    generate = app.openapi

    def openapi() -> dict:
        if app.openapi_schema:
            return app.openapi_schema
        schema = generate()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for model in (ErrorResponse, ErrorDetail):
            components[model.__name__] = model.model_json_schema(
                ref_template="#/components/schemas/{model}")
            components[model.__name__].pop("$defs", None)
        components.pop("HTTPValidationError", None)
        components.pop("ValidationError", None)
        error = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}
        for path, operations in schema["paths"].items():
            for operation in operations.values():
                responses = operation["responses"]
                responses.pop("422", None)
                codes = list(_ERRORS) if path.startswith("/v1/chat") else []
                if path.startswith("/v1/"):
                    codes += ["502", "503", "504"]
                if path not in _Guard.OPEN_PATHS:
                    codes.append("401")
                for code in codes:
                    responses.setdefault(code, {"description": _ERRORS[code], "content": error})
        app.openapi_schema = schema
        return schema

    app.openapi = openapi
