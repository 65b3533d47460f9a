"""Per-process state of a worker: the models of its FaceService
(:func:`identity_service.jobs.context.service`, one per process) loaded when a pool process
starts, and the watchdog thread of the worker's main process that sends stalled jobs' tasks
again."""

from __future__ import annotations

import logging
import random
import threading
from typing import Any

from celery.signals import worker_process_init, worker_ready, worker_shutdown
from celery.worker import state
from sqlalchemy.pool import NullPool

from identity_service.config import Settings
from identity_service.jobs.context import service
from identity_service.jobs.dispatch import Dispatcher
from identity_service.jobs.recovery import recover_stalled
from identity_service.store import Repository, make_engine

log = logging.getLogger(__name__)

_watchdog: Watchdog | None = None


@worker_process_init.connect
def _load_models(**_: Any) -> None:
    # A pool process starts: connect and load the default models now, not in the first task.
    try:
        service().pipeline()
    except Exception as exc:  # e.g. database down: the first task retries
        log.warning("could not preload the service: %s", exc)


class Watchdog(threading.Thread):
    def __init__(self, settings: Settings) -> None:
        super().__init__(name="faceid-job-watchdog", daemon=True)
        self.settings = settings
        self.stop = threading.Event()

    def run(self) -> None:
        s = self.settings
        # No pooled connection: pool processes forked later must not inherit one in use.
        engine = make_engine(s.resolved_database_url, poolclass=NullPool)
        repo = Repository(engine)
        dispatcher = Dispatcher(s)
        while not self.stop.wait(s.jobs.sweep_interval * random.uniform(0.8, 1.2)):
            try:
                repo.touch_jobs(held_job_ids())  # heartbeat: this worker still has them
                recover_stalled(repo, dispatcher, stall_seconds=s.jobs.stall_seconds)
            except Exception as exc:  # database or broker down: next sweep
                log.warning("job watchdog: %s", exc)
        engine.dispose()


def held_job_ids() -> list[str]:
    """Job (part) ids of the tasks this worker is running or holds for later (a retry's
    countdown, prefetched)."""

    requests = [*state.active_requests, *state.reserved_requests]
    return [str(r.args[0]) for r in requests if r.args]


@worker_ready.connect
def _start_watchdog(**_: Any) -> None:
    global _watchdog
    settings = Settings()
    if settings.jobs.eager:
        return
    _watchdog = Watchdog(settings)
    _watchdog.start()


@worker_shutdown.connect
def _stop_watchdog(**_: Any) -> None:
    if _watchdog is not None:
        _watchdog.stop.set()
