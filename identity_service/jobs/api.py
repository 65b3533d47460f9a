"""Submitting jobs and following them: what the CLI and the HTTP API call.

Each function takes a running :class:`FaceService` or :class:`Settings` (a short-lived service
is opened on them). With a broker configured the tasks go to the workers and ``submit_*``
returns at once; with none (the embedded default) they run in this process before it returns.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import kombu.exceptions
import redis.exceptions

from ..config import Settings
from ..errors import DuplicateError
from ..service import FaceService
from ..store import JobRecord
from ..store.job_parts import FINISHED_STATUSES
from ..types import DEFAULT_TENANT
from . import admin
from .dispatch import Dispatcher
from .enroll import plan_folder_job
from .recovery import messages_for

Target = FaceService | Settings
log = logging.getLogger(__name__)
# What sending to a broker that is down raises, after the publish retries.
BROKER_ERRORS = (kombu.exceptions.OperationalError, redis.exceptions.ConnectionError)


@contextmanager
def open_service(target: Target) -> Iterator[FaceService]:
    if isinstance(target, FaceService):
        yield target
        return
    service = FaceService.embedded(target)
    try:
        yield service
    finally:
        service.close()


def dispatch_job(target: Target, job_id: str) -> int:
    """Send every unfinished task of a job; returns how many. Also resumes a stalled job:
    finished parts are skipped by the workers."""
    with open_service(target) as service:
        job = service.repo.get_job(job_id)
        messages = messages_for(service.repo, job)
        dispatcher = Dispatcher(service.settings, service)
        # A dispatch is activity: the workers' stall detection counts from here.
        service.repo.touch_jobs(m.job_id for m in messages)
        return dispatcher.send_many(messages)


def create_enroll_job(
    target: Target,
    collection: str,
    root: Path | str,
    *,
    batch_size: int = 32,
    limit: int | None = None,
    model: str | None = None,
    tenant: str = DEFAULT_TENANT,
    job_id: str | None = None,
) -> JobRecord:
    """The job row and its batches for enrolling ``root`` (DIR/<person>/*.jpg), not sent yet."""
    with open_service(target) as service:
        coll = service.for_tenant(tenant).get_or_create_collection(collection, model)
        queue = service.settings.jobs.embed_queue
        return plan_folder_job(
            service,
            coll,
            Path(root),
            batch_size=batch_size,
            limit=limit,
            queue=queue,
            job_id=job_id,
        )


def idempotent_job_id(tenant: str, key: str) -> str:
    """The job id an ``Idempotency-Key`` stands for: the same key of the same tenant always
    names the same job, so a retried submission finds the job the first one stored."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"faceid-job:{tenant}:{key}").hex


def submit_enroll_folder(
    target: Target,
    collection: str,
    root: Path | str,
    batch_size: int = 32,
    *,
    limit: int | None = None,
    model: str | None = None,
    tenant: str = DEFAULT_TENANT,
    idempotency_key: str | None = None,
) -> str:
    """Enroll a folder tree as a job of batches; returns the job id.

    With ``idempotency_key``, a submission that repeats one already stored returns that job
    and creates nothing. If the broker cannot take the messages, the job stays stored and
    queued: the workers' recovery sweep sends it once the broker is back."""
    with open_service(target) as service:
        job_id = None if idempotency_key is None else idempotent_job_id(tenant, idempotency_key)
        try:
            job = create_enroll_job(
                service,
                collection,
                root,
                batch_size=batch_size,
                limit=limit,
                model=model,
                tenant=tenant,
                job_id=job_id,
            )
        except DuplicateError:
            assert job_id is not None
            return job_id  # the first submission's job
        try:
            dispatch_job(service, job.id)
        except BROKER_ERRORS as exc:
            log.warning("job %s stored; the broker is unavailable (%s)", job.id, exc)
        return job.id


def submit_reindex(target: Target, collection: str, tenant: str = DEFAULT_TENANT) -> str:
    with open_service(target) as service:
        job = admin.create_reindex_job(service, collection, tenant)
        dispatch_job(service, job.id)
        return job.id


def submit_purge(target: Target, collection: str, tenant: str = DEFAULT_TENANT) -> str:
    with open_service(target) as service:
        job = admin.create_purge_job(service, collection, tenant)
        dispatch_job(service, job.id)
        return job.id


def create_migration_job(
    target: Target,
    collection: str,
    model: str,
    source: Path | str,
    *,
    batch_size: int = 32,
    limit: int | None = None,
    allow_missing: bool = False,
    tenant: str = DEFAULT_TENANT,
) -> JobRecord:
    with open_service(target) as service:
        return admin.create_migration_job(
            service,
            collection,
            model,
            Path(source),
            batch_size=batch_size,
            limit=limit,
            allow_missing=allow_missing,
            tenant=tenant,
            queue=service.settings.jobs.embed_queue,
        )


def submit_migrate_model(
    target: Target,
    collection: str,
    model: str,
    source: Path | str,
    *,
    batch_size: int = 32,
    limit: int | None = None,
    allow_missing: bool = False,
    tenant: str = DEFAULT_TENANT,
) -> str:
    """Re-embed ``source`` with ``model`` into a new collection version, then switch to it."""
    with open_service(target) as service:
        job = create_migration_job(
            service,
            collection,
            model,
            source,
            batch_size=batch_size,
            limit=limit,
            allow_missing=allow_missing,
            tenant=tenant,
        )
        dispatch_job(service, job.id)
        return job.id


def get_job(target: Target, job_id: str) -> JobRecord:
    with open_service(target) as service:
        return service.repo.get_job(job_id)


def list_jobs(
    target: Target, kind: str | None = None, status: str | None = None, limit: int = 50
) -> list[JobRecord]:
    with open_service(target) as service:
        return service.repo.list_jobs(kind, status, limit)


def wait_for_job(
    target: Target,
    job_id: str,
    *,
    timeout: float | None = None,
    poll: float = 0.5,
    on_update: Callable[[JobRecord], None] | None = None,
) -> JobRecord:
    """Poll the job row until it is finished; TimeoutError after ``timeout`` seconds."""
    deadline = None if timeout is None else time.monotonic() + timeout
    with open_service(target) as service:
        while True:
            job = service.repo.get_job(job_id)
            if on_update is not None:
                on_update(job)
            if job.status in FINISHED_STATUSES:
                return job
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {job.status} after {timeout} s")
            time.sleep(poll)


def job_summary(job: JobRecord) -> dict[str, Any]:
    """A job as JSON-friendly data (the CLI's --json and the HTTP API)."""
    seconds = None
    if job.started is not None:
        end = job.finished or datetime.now(UTC)
        seconds = round((end - job.started).total_seconds(), 2)
    keep = ("collection", "tenant", "root", "model", "live_collection", "batch_size")
    return {
        "id": job.id,
        "kind": job.kind,
        "status": job.status,
        "progress": round(job.progress, 4),
        "counts": job.counts,
        "errors": len(job.errors),
        "params": {k: job.params[k] for k in keep if k in job.params},
        "created": job.created.isoformat(),
        "started": job.started.isoformat() if job.started else None,
        "finished": job.finished.isoformat() if job.finished else None,
        "seconds": seconds,
    }
