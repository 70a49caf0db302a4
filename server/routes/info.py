"""Models, presets, liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from askwise.policy.engines import EngineError

from ..errors import APIError
from ..service import now

router = APIRouter(tags=["info"])


@router.get("/v1/models")
async def models(request: Request):
    service = request.app.state.service
    try:
        names = await service.engine.list_models()
    except EngineError as exc:
        raise APIError.from_engine(exc) from None
    return {"object": "list", "data": [
        {"id": name, "object": "model", "created": now(), "owned_by": "askwise"} for name in names]}


@router.get("/v1/presets")
async def presets(request: Request):
    service = request.app.state.service
    return {"object": "list", "data": [
        {"name": p.name, "alpha": p.costs.alpha, "beta": p.costs.beta, "rationale": p.rationale,
         "target": p.target}
        for p in service.presets.values()]}


@router.get("/healthz")
async def healthz():
    """Liveness: the process answers. Says nothing about the model."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {
    "description": "Not ready: loading, backend down, or draining",
    "content": {"application/json": {"schema": {"type": "object"}}}}})
async def readyz(request: Request):
    """Readiness: the model is loaded (embedded) or a backend replica answers (openai), the
    value server answers where one decides, and the server is not shutting down."""
    service = request.app.state.service
    if service.admission.closed:
        return JSONResponse({"status": "draining", "reason": "shutting down"}, status_code=503)
    try:
        await service.engine.check_ready()
        if service.value is not None:
            await service.value.check_ready()
    except EngineError as exc:
        return JSONResponse({"status": "unavailable", "reason": exc.message}, status_code=503,
                            headers={"Retry-After": str(round(exc.retry_after or 5))})
    return {"status": "ready", "backend": service.settings.backend}


@router.get("/metrics", response_class=Response,
            responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text format"}})
async def metrics(request: Request):
    registry = request.app.state.service.metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
