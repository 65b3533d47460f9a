"""Liveness, readiness and Prometheus metrics (no auth: they reveal no tenant data)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import text

from .deps import Runtime, runtime
from .schemas import HealthOut

router = APIRouter(tags=["health"])
Rt = Depends(runtime)


@router.get("/healthz", response_model=HealthOut)
def healthz() -> dict[str, Any]:
    """The process answers."""
    return {"status": "ok", "checks": {}}


@router.head("/healthz", include_in_schema=False)
def healthz_head() -> dict[str, Any]:
    """HEAD of /healthz: load balancers probe with it."""
    return healthz()


@router.get("/readyz", response_model=HealthOut, responses={503: {"model": HealthOut}})
def readyz(rt: Runtime = Rt) -> Any:
    """Ready to serve: database reachable, models and indexes loaded, broker reachable (if
    one is configured). 503 with the failing checks otherwise."""
    checks: dict[str, Any] = {}
    ok = True
    try:
        with rt.service.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # the type only: the message names hosts and users
        ok, checks["database"] = False, f"error: {type(exc).__name__}"
    if ok:
        try:
            if not rt.ready:
                rt.warm()
            checks["models"] = "ok"
            # How many are loaded, not whose: this answers without a key.
            checks["indexes"] = {"loaded": len(rt.service.galleries.sizes())}
        except Exception as exc:
            ok, checks["indexes"] = False, f"error: {type(exc).__name__}"
    if rt.settings.jobs.broker_url:
        try:
            _ping_broker(rt.settings.jobs.broker_url)
            checks["broker"] = "ok"
        except Exception as exc:
            ok, checks["broker"] = False, f"error: {type(exc).__name__}"
    body = {"status": "ok" if ok else "unavailable", "checks": checks}
    return body if ok else JSONResponse(body, status_code=503)


def _ping_broker(url: str) -> None:
    from kombu import Connection

    with Connection(url, connect_timeout=2) as conn:
        conn.ensure_connection(max_retries=1, timeout=2)


@router.get("/metrics", response_class=Response)
def metrics(rt: Runtime = Rt) -> Response:
    """Prometheus exposition: request latency by route, faces enrolled, index sizes, jobs, find
    requests shed and the model queue."""
    service = rt.service
    body = rt.metrics.render(
        service.galleries.sizes,
        lambda: len(service.repo.unfinished_jobs()),
        service.repo.faces_added_total,
        per_collection=rt.settings.api.metrics_per_collection,
        queue_depth=lambda: pool.depth() if (pool := rt.pooled()) is not None else 0,
    )
    return Response(body, media_type=CONTENT_TYPE_LATEST)
