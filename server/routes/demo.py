"""`GET /`: the web demo, one static page (no build step) that talks to `/v1/chat`."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

router = APIRouter(tags=["demo"])


@lru_cache(maxsize=1)
def _page() -> str:
    return resources.files("askwise.server").joinpath("static/demo.html").read_text(encoding="utf-8")


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
async def demo() -> HTMLResponse:
    return HTMLResponse(_page())
