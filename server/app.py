"""The app factory: routers, middleware and every exception handler, wired in one place."""

from __future__ import annotations

import hmac
import logging
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from starlette.exceptions import HTTPException as StarletteHTTPException

from askwise import __version__
from askwise.policy.costs import load_presets
from askwise.policy.engines import Engine

from .errors import APIError, error_response, install_error_handlers
from .metrics import Metrics
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

        if not settings.backend_url:
            raise ValueError("--backend openai needs --backend-url (ASKWISE_BACKEND_URL)")
        if settings.base_model or settings.adapter:
            # The backend serves its own weights; ignoring these would serve the wrong policy.
            raise ValueError("--base-model and --adapter apply to the embedded engine; with "
                             "--backend openai serve them in vLLM (askwise vllm-cpu --adapter)")
        return OpenAIEngine(
            settings.backend_url, api_key=settings.backend_api_key, default_model=settings.model,
            structured_outputs=settings.structured_outputs,
            connect_timeout_s=settings.backend_connect_timeout_s, timeout_s=settings.backend_timeout_s,
            max_connections=settings.max_in_flight)

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
    ).start()


class _Guard:
    """ASGI middleware for what must happen before a body is read: the API key, and the body
    size (checked on Content-Length and again while the body streams in)."""

    def __init__(self, app, settings: Settings):
        self.app = app
        self.max_body = settings.max_body_bytes
        self.api_key = settings.api_key

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or ())
        if self.api_key and scope["path"].startswith("/v1/"):
            given = headers.get(b"authorization", b"").decode("latin-1")
            if not hmac.compare_digest(given, f"Bearer {self.api_key}"):
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


def build_app(settings: Settings | None = None, engine: Engine | None = None) -> FastAPI:
    settings = settings or Settings()
    presets = load_presets(settings.presets_file)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.service = ChatService(settings, engine or make_engine(settings), presets, Metrics())
        log.info("askwise %s serving backend=%s on %s:%s", __version__, settings.backend,
                 settings.host, settings.port)
        try:
            yield
        finally:
            await app.state.service.engine.aclose()

    app = FastAPI(title="askwise", version=__version__, lifespan=lifespan,
                  description="Steerable clarification policy: answer, answer every reading, or ask.")
    for module in (chat, openai_compat, info, demo):
        app.include_router(module.router)
    install_error_handlers(app)
    app.add_middleware(_Guard, settings=settings)
    return app
