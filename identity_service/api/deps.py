"""What routes share: the per-process runtime (one FaceService, models loaded once)."""

from __future__ import annotations

import threading
from typing import Any

from fastapi import Request

from ..errors import NotFoundError
from ..service import FaceService
from ..store import CollectionRecord, JobRecord
from .auth import Principal
from .metrics import Metrics
from .settings import ApiSettings


class Runtime:
    """The app's FaceService, created on first use (so building the app, or its OpenAPI
    document, touches no database and loads no model)."""

    def __init__(self, settings: ApiSettings, service: FaceService | None = None) -> None:
        self.settings = settings
        self._service = service
        self._owned = service is None
        self._lock = threading.Lock()
        self.metrics = Metrics()
        self.ready = False

    @property
    def service(self) -> FaceService:
        if self._service is None:
            with self._lock:
                if self._service is None:
                    self._service = FaceService.embedded(self.settings)
        return self._service

    def warm(self) -> None:
        """Load the default model, and every collection's index when ``api_preload``."""
        if self.settings.api_search_threads:
            import faiss

            faiss.omp_set_num_threads(self.settings.api_search_threads)
        service = self.service
        service.pipeline()
        if self.settings.api_preload:
            for coll in service.repo.list_collections():
                service.pipeline(coll.model)
                service.galleries.follower(coll)
        self.ready = True

    def close(self) -> None:
        if self._owned and self._service is not None:
            self._service.close()
            self._service = None


def runtime(request: Request) -> Runtime:
    return request.app.state.runtime


def collection_of(rt: Runtime, who: Principal, name: str) -> CollectionRecord:
    """The caller's collection; another tenant's is as unknown as a missing one (404)."""
    return rt.service.for_tenant(who.tenant).collection(name)


def job_of(rt: Runtime, who: Principal, job_id: str) -> JobRecord:
    job = rt.service.repo.get_job(job_id)
    if job.params.get("tenant", "default") != who.tenant:
        raise NotFoundError(f"unknown job {job_id!r}", job_id=job_id)
    return job


def collection_out(coll: CollectionRecord, counts: Any = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": coll.name,
        "tenant": coll.tenant,
        "model": coll.model,
        "model_version": coll.model_version,
        "dim": coll.dim,
        "metric": coll.metric,
        "threshold": coll.threshold,
        "created": coll.created,
    }
    if counts is not None:
        out.update(identities=counts.identities, faces=counts.faces)
    return out
