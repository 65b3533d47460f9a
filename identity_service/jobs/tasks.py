"""Celery tasks. Each takes one job (or job part) id; the job row holds the rest.

All tasks acknowledge late and are rejected back to the queue when their worker dies, so a
killed worker's task runs again elsewhere; every task is idempotent. Transient errors (database
or broker unreachable) are retried with exponential backoff, a bounded number of times; a task
that still fails marks its job failed.
"""

from __future__ import annotations

import logging
from typing import Any

import kombu.exceptions
import redis.exceptions
import sqlalchemy.exc
from celery import Task

from ..config import JobSettings
from ..errors import FaceIDError
from . import admin, context, enroll
from .celery_app import app
from .dispatch import (
    ENROLL_PART_TASK,
    FINISH_MIGRATION_TASK,
    PURGE_TASK,
    REINDEX_TASK,
    Dispatcher,
)

log = logging.getLogger(__name__)

TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    kombu.exceptions.OperationalError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    ConnectionError,
    TimeoutError,
)


class JobTask(Task):
    acks_late = True
    reject_on_worker_lost = True
    autoretry_for = TRANSIENT_ERRORS
    max_retries = JobSettings().task_max_retries
    retry_backoff = 1
    retry_backoff_max = 30
    retry_jitter = True

    def on_failure(self, exc: Exception, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        job_id = args[0] if args else kwargs.get("job_id")
        error = (
            exc.to_dict()
            if isinstance(exc, FaceIDError)
            else {"code": "internal_error", "message": f"{type(exc).__name__}: {exc}"[:1000]}
        )
        error["task"] = self.name
        try:
            repo = context.service().repo
            repo.fail_job(job_id, error)
            if "." in job_id:  # a part: its job fails with it
                repo.fail_job(job_id.rsplit(".", 1)[0], {**error, "part": job_id})
        except Exception as inner:  # the watchdog will send the task again
            log.error("could not record the failure of job %s: %s", job_id, inner)


def _dispatcher() -> Dispatcher:
    svc = context.service()
    return Dispatcher(svc.settings, svc)


@app.task(base=JobTask, name=ENROLL_PART_TASK)
def enroll_part(part_id: str) -> dict[str, Any]:
    return enroll.run_enroll_part(context.service(), part_id, _dispatcher()).to_dict()


@app.task(base=JobTask, name=REINDEX_TASK)
def reindex(job_id: str) -> dict[str, Any]:
    return admin.run_reindex(context.service(), job_id).__dict__


@app.task(base=JobTask, name=PURGE_TASK)
def purge(job_id: str) -> dict[str, Any]:
    return admin.run_purge(context.service(), job_id).__dict__


@app.task(base=JobTask, name=FINISH_MIGRATION_TASK)
def finish_migration(job_id: str) -> dict[str, Any]:
    return admin.run_finish_migration(context.service(), job_id).__dict__
