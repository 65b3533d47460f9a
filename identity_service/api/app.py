"""The FastAPI application factory and the OpenAPI export."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from .. import __version__
from ..config import Settings
from ..service import FaceService
from . import (
    handlers,
    routes_analyze,
    routes_collections,
    routes_enroll,
    routes_health,
    routes_query,
)
from .deps import Runtime
from .middleware import CatchAllMiddleware, GuardMiddleware, TimingMiddleware
from .schemas import ErrorOut

log = logging.getLogger("identity_service.api")

DESCRIPTION = """Face identification over HTTP: collections of identities, enrollment, find
(1:N), verify (1:1) and represent (embeddings).

Authenticate with an API key (`Authorization: Bearer <key>` or `X-API-Key`), made by
`faceid keys create --tenant T --scopes query,enroll`. A key sees only its tenant's collections.
Every error is `{"error": {"code": ..., "message": ...}}` with a stable code."""

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorOut, "description": what}
    for status, what in [
        (400, "bad image or request"),
        (401, "missing or invalid API key"),
        (403, "the key lacks the scope"),
        (404, "unknown collection, identity or job"),
        (409, "duplicate or conflicting state"),
        (413, "body or image too large"),
        (422, "validation error, no face, limit exceeded"),
        (503, "a model file is missing or the database is unavailable (retry later)"),
    ]
}


def create_app(settings: Settings | None = None, service: FaceService | None = None) -> FastAPI:
    """The API over one FaceService (``service``, or one made from ``settings`` on first use;
    models load once per process)."""
    if settings is None and service is not None:
        settings = service.settings
    rt = Runtime(settings or Settings(), service)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            await run_in_threadpool(rt.warm)
        except handlers.dependency_errors() as exc:
            # Stay up: /readyz answers 503 and requests 503 with Retry-After until the database
            # (or broker) is back; the first request after that finishes the warm-up.
            log.warning("started without a dependency (%s); not ready yet", type(exc).__name__)
        try:
            yield
        finally:
            await run_in_threadpool(rt.close)

    app = FastAPI(
        title="faceid",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.runtime = rt
    handlers.install(app)
    for module in (routes_collections, routes_enroll, routes_query, routes_analyze):
        app.include_router(module.router, responses=ERROR_RESPONSES)
    app.include_router(routes_health.router)
    # Outermost first: the guard refuses oversized bodies before anything is timed or parsed.
    app.add_middleware(CatchAllMiddleware)  # innermost: added first
    app.add_middleware(TimingMiddleware, metrics=rt.metrics)
    app.add_middleware(GuardMiddleware, max_bytes=rt.settings.api.max_body_bytes)
    return app


def app_from_env() -> FastAPI:
    """The uvicorn factory of ``faceid serve`` (settings from the environment)."""
    return create_app()


def openapi_schema() -> dict[str, Any]:
    """The OpenAPI document; building it opens no database and loads no model."""
    return create_app(Settings()).openapi()


def openapi_text() -> str:
    return json.dumps(openapi_schema(), indent=2, ensure_ascii=False) + "\n"


def export_openapi(path: Path | str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(openapi_text(), encoding="utf-8")
    return path
