"""What routes share: the per-process runtime (one FaceService, models loaded once)."""

from __future__ import annotations

import threading
from typing import Any

from fastapi import Request

from ..config import Settings
from ..errors import NotFoundError
from ..service import FaceService
from ..service.model_pool import ModelPool
from ..store import CollectionRecord, JobRecord
from .auth import Principal
from .key_cache import KeyCache
from .metrics import Metrics


class Runtime:
    """The app's FaceService, created on first use (so building the app, or its OpenAPI
    document, touches no database and loads no model)."""

    def __init__(self, settings: Settings, service: FaceService | None = None) -> None:
        self.settings = settings
        self._service = service
        self._owned = service is None
        self._lock = threading.Lock()
        self.metrics = Metrics()
        self.keys = KeyCache(settings.index.poll_interval, self._keys_version)
        self.ready = False
        self._pool: ModelPool | None = None

    @property
    def service(self) -> FaceService:
        if self._service is None:
            with self._lock:
                if self._service is None:
                    self._service = FaceService.embedded(self.settings)
        return self._service

    def _keys_version(self) -> tuple[int, int]:
        return self.service.repo.api_keys_version()

    def warm(self) -> None:
        """Load the default model, and every collection's index when ``api.preload``."""
        if self.settings.api.auth:
            self.keys.start()
        threads = self.settings.api.search_threads
        if threads:
            import faiss
            from threadpoolctl import threadpool_limits

            faiss.omp_set_num_threads(threads)
            # numpy's BLAS too (process-wide): the index picks its lists with one BLAS product,
            # and OpenBLAS threads on that product contend across concurrent searches: 32 of them
            # on a 1M gallery did 19 searches/s with 2 BLAS threads, 1,029 with 1 (2 cores).
            threadpool_limits(limits=threads, user_api="blas")
        service = self.service
        preload = self.settings.api.preload
        collections = service.repo.list_collections() if preload else []
        # The model workers start and load their models while this process loads its own.
        pool = self.model_pool()
        models = [self.settings.models.embedder, *(c.model for c in collections)]
        starting = threading.Thread(target=pool.warm, args=(models,)) if pool and preload else None
        if starting is not None:
            starting.start()
        try:
            service.pipeline()
            for coll in collections:
                service.pipeline(coll.model)
                service.galleries.follower(coll)
            service.galleries.start_poller()
        finally:
            if starting is not None:
                starting.join()
        self.ready = True

    def model_pool(self) -> ModelPool | None:
        """find's pool of model worker processes (None when ``api.model_workers`` is 0)."""
        if self._pool is None and self.settings.api.model_workers != 0:
            with self._lock:
                if self._pool is None:
                    api = self.settings.api
                    self._pool = ModelPool(
                        self.settings,
                        workers=api.model_workers,
                        max_batch=api.batch_max_faces,
                        max_wait_ms=api.batch_wait_ms,
                        queue_max=api.queue_max,
                    )
        return self._pool

    def pooled(self) -> ModelPool | None:
        """The model pool if it is running (starts none)."""
        return self._pool

    def close(self) -> None:
        self.keys.close()
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()
        if self._owned and self._service is not None:
            self._service.close()
            self._service = None


async def runtime(request: Request) -> Runtime:  # async: no threadpool hop per request
    return request.app.state.runtime


def collection_of(rt: Runtime, who: Principal, name: str) -> CollectionRecord:
    """The caller's collection; another tenant's is as unknown as a missing one (404)."""
    return rt.service.for_tenant(who.tenant).collection(name)


def query_collection(rt: Runtime, who: Principal, name: str) -> CollectionRecord:
    """``collection_of`` for a query: this node's fresh copy when it holds one."""
    return rt.service.for_tenant(who.tenant).live_collection(name)


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
