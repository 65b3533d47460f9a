"""Sending job tasks: to the broker, or, with no broker configured, running them right here.

Both paths run the same Celery task functions (:mod:`.tasks`): eagerly through
``Task.apply`` in the caller's process and with the caller's FaceService, or through the
broker to whichever worker consumes the queue. Tasks are named, and only a row id travels in a
message: the job row holds everything a task needs, so any message can be sent again.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from dataclasses import dataclass

from celery.exceptions import AlwaysEagerIgnored

from ..config import JobSettings, Settings
from ..service import FaceService
from .celery_app import app as celery_app
from .context import bound

ENROLL_PART_TASK = "faceid.enroll_part"
REINDEX_TASK = "faceid.reindex"
PURGE_TASK = "faceid.purge"
FINISH_MIGRATION_TASK = "faceid.finish_migration"
ADMIN_QUEUE = "admin"

# Publishing waits this long for a broker that is (re)starting before giving up.
PUBLISH_RETRY = {"max_retries": 10, "interval_start": 0.2, "interval_step": 0.5, "interval_max": 2}


@dataclass(frozen=True)
class Message:
    task: str
    job_id: str
    queue: str


class Dispatcher:
    def __init__(self, settings: Settings | None, service: FaceService | None = None) -> None:
        settings = settings or (service.settings if service is not None else Settings())
        self.jobs: JobSettings = settings.jobs
        self.service = service
        # The tasks are registered on this app when the package is imported
        # (identity_service/jobs/__init__.py imports .tasks), before any job is dispatched.
        self._app = celery_app

    @property
    def eager(self) -> bool:
        return self.jobs.eager

    def send(self, task: str, job_id: str, queue: str) -> None:
        self.send_many([Message(task, job_id, queue)])

    def send_many(self, messages: Iterable[Message]) -> int:
        app = self._app
        messages = list(messages)
        if self.eager:
            if self.service is None:
                raise ValueError("running tasks in-process needs the FaceService to run them on")
            with bound(self.service):
                for m in messages:
                    app.tasks[m.task].apply(args=[m.job_id])
            return len(messages)
        # send_task, not apply_async: this process's app may be configured eager (no broker in
        # its environment) while these settings name one.
        with warnings.catch_warnings(), app.connection_for_write(self.jobs.broker_url) as conn:
            warnings.simplefilter("ignore", AlwaysEagerIgnored)
            producer = app.amqp.Producer(conn, auto_declare=True)
            for m in messages:
                app.send_task(
                    m.task,
                    args=[m.job_id],
                    queue=m.queue,
                    producer=producer,
                    retry=True,
                    retry_policy=PUBLISH_RETRY,
                )
        return len(messages)
