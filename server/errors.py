"""Errors in the OpenAI shape, `{"error": {"message", "type", "param", "code"}}`.

Every exception handler is registered here, in one place. Bad input is a 4xx (never a 5xx:
OpenAI clients retry 5xx, so a 5xx for bad input would be sent three times); backend
trouble is 502/503/504; anything unexpected is a 500 that names no internals.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from askwise.policy.engines import EngineError

log = logging.getLogger(__name__)

_TYPES = {
    400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error",
    405: "invalid_request_error", 413: "invalid_request_error", 429: "rate_limit_error",
    500: "server_error", 502: "backend_error", 503: "service_unavailable", 504: "timeout_error",
}
# pydantic echoes the whole input in each error; never send that back (vLLM #49239).
MAX_ERRORS_REPORTED = 3


class APIError(Exception):
    def __init__(self, status: int, message: str, *, param: str | None = None,
                 code: str | None = None, retry_after: float | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code
        self.retry_after = retry_after

    def body(self) -> dict:
        return error_body(self.status, self.message, self.param, self.code)

    @classmethod
    def from_engine(cls, exc: EngineError) -> APIError:
        return cls(exc.status, exc.message, param=exc.param, code=exc.code, retry_after=exc.retry_after)


def error_body(status: int, message: str, param: str | None = None, code: str | None = None) -> dict:
    return {"error": {"message": message, "type": _TYPES.get(status, "invalid_request_error"),
                      "param": param, "code": code}}


def error_response(error: APIError) -> JSONResponse:
    headers = {}
    if error.retry_after is not None:
        headers["Retry-After"] = str(max(1, round(error.retry_after)))
    if 400 <= error.status < 500 and error.status != 429:
        headers["x-should-retry"] = "false"  # the openai client reads this
    return JSONResponse(error.body(), status_code=error.status, headers=headers)


def _validation_message(exc: RequestValidationError) -> tuple[str, str | None]:
    errors = exc.errors()
    parts, first_param = [], None
    for error in errors[:MAX_ERRORS_REPORTED]:
        loc = [str(part) for part in error.get("loc", ()) if part != "body"]
        param = ".".join(loc) or None
        first_param = first_param or param
        if error.get("type") == "json_invalid":
            parts.append("request body is not valid JSON")
        elif error.get("type") == "extra_forbidden":
            parts.append(f"{param}: unknown field")
        else:
            parts.append(f"{param}: {error.get('msg')}" if param else str(error.get("msg")))
    if len(errors) > MAX_ERRORS_REPORTED:
        parts.append(f"and {len(errors) - MAX_ERRORS_REPORTED} more")
    return "; ".join(parts) or "invalid request", first_param


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def _api_error(request: Request, exc: APIError):
        return error_response(exc)

    @app.exception_handler(EngineError)
    async def _engine_error(request: Request, exc: EngineError):
        return error_response(APIError.from_engine(exc))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        message, param = _validation_message(exc)
        return error_response(APIError(400, message, param=param, code="invalid_request"))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        code = {404: "not_found", 405: "method_not_allowed",
                413: "request_too_large"}.get(exc.status_code)
        return error_response(APIError(exc.status_code, str(exc.detail), code=code))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(APIError(500, "internal error", code="internal_error"))
