"""Finding a job's unfinished tasks, and sending them again when their messages were lost.

Redis keeps a message that a worker took but never acknowledged (the worker was killed) and
hands it out again after the visibility timeout; it cannot give back a message it no longer
has (a broker restarted without persistence loses its queues). The job rows know what is
unfinished, so every worker runs :func:`recover_stalled` every few seconds, and also stamps the
rows of the tasks it holds (running, or waiting to retry) as a heartbeat. Sent again are:

* a running row whose heartbeat is older than ``stall_seconds``: its worker is gone;
* every unfinished row, when no job anywhere was created, (re)started, heartbeaten or finished
  for ``stall_seconds``: nothing is happening, so the messages are gone. (A queue that is
  merely long keeps finishing jobs, so it is left alone.)

A task sent twice costs little: a finished part is skipped, and a part run twice adds nothing
twice. Sent rows are stamped as started, so the workers that all run this do not each send
them again before the next stall.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from ..store import JobRecord, Repository
from ..store.job_parts import FINISHED_STATUSES
from ..store.models import utcnow
from .dispatch import ADMIN_QUEUE, Dispatcher, Message

log = logging.getLogger(__name__)


def own_message(job: JobRecord) -> Message | None:
    """The task that runs this row itself, if it is unfinished and run by one task."""
    if job.status == "finalizing" and "finish_task" in job.params:
        return Message(job.params["finish_task"], job.id, ADMIN_QUEUE)
    if job.status not in FINISHED_STATUSES and "task" in job.params:
        return Message(job.params["task"], job.id, job.params.get("queue", ADMIN_QUEUE))
    return None


def messages_for(repo: Repository, job: JobRecord) -> list[Message]:
    """Every unfinished task of a job: its own, or those of its unfinished parts."""
    own = own_message(job)
    if own is not None or job.status in FINISHED_STATUSES:
        return [own] if own is not None else []
    parts = repo.job_parts(job.id, unfinished_only=True)
    return [m for m in map(own_message, parts) if m is not None]


@dataclass(frozen=True)
class RecoveryReport:
    stalled: bool
    resent: list[str] = field(default_factory=list)


def recover_stalled(
    repo: Repository,
    dispatcher: Dispatcher,
    *,
    stall_seconds: float,
    now: datetime | None = None,
) -> RecoveryReport:
    now = now or utcnow()
    rows = repo.unfinished_jobs(started_before=now - timedelta(seconds=stall_seconds))
    last = repo.job_activity()
    stalled = last is not None and (now - last).total_seconds() > stall_seconds
    if stalled:
        rows = repo.unfinished_jobs()
    messages = [m for m in map(own_message, rows) if m is not None]
    if not messages:
        return RecoveryReport(stalled)
    repo.touch_jobs(m.job_id for m in messages)
    dispatcher.send_many(messages)
    log.warning(
        "resent %d unfinished job task(s) (stalled=%s, last activity %s)",
        len(messages),
        stalled,
        last,
    )
    return RecoveryReport(stalled, [m.job_id for m in messages])
