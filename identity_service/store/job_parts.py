"""Repository part for jobs split into parts (enrollment batches) and the blue/green switch
of collections. Each method is one transaction; the job and part rows it changes are locked
parent first, then part, so concurrent workers never deadlock on them."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from ..errors import ConflictError, DuplicateError, NotFoundError
from ._base import StoreBase
from .models import Collection, Job, utcnow
from .records import JobRecord, aware

FINISHED_STATUSES = frozenset({"done", "succeeded", "failed", "cancelled"})
# A job split into parts has one row per part, id "<job id>.<n>" and kind "<job kind>.part".
PART_SUFFIX = ".part"
MAX_JOB_ERRORS = 1000  # per-image errors kept on the job row; each part row keeps its own


def _to_job(j: Job) -> JobRecord:
    return JobRecord(
        id=j.id,
        kind=j.kind,
        status=j.status,
        progress=j.progress,
        counts=dict(j.counts or {}),
        errors=list(j.errors or []),
        params=dict(j.params or {}),
        created=aware(j.created),  # type: ignore[arg-type]
        started=aware(j.started),
        finished=aware(j.finished),
    )


class JobPartsMixin(StoreBase):
    def create_job_with_parts(
        self,
        kind: str,
        params: dict[str, Any],
        parts: Sequence[dict[str, Any]],
        *,
        counts: dict[str, Any] | None = None,
        errors: Iterable[Any] = (),
        job_id: str | None = None,
    ) -> JobRecord:
        """A queued job and its queued part rows, created together. ``params["complete_status"]``
        (default "succeeded") is the status the job takes when its last part completes; a job
        with no parts takes it at once."""
        job_id = job_id or uuid.uuid4().hex
        now = utcnow()
        row = Job(
            id=job_id,
            kind=kind,
            status="queued",
            params=dict(params),
            counts={**(counts or {}), "batches": len(parts), "batches_done": 0},
            errors=list(errors)[:MAX_JOB_ERRORS],
            created=now,
        )
        if not parts:
            row.status = params.get("complete_status", "succeeded")
            row.progress = 1.0
            if row.status in FINISHED_STATUSES:
                row.started = row.finished = now
        try:
            with self._tx(write=True) as s:
                s.add(row)
                s.add_all(
                    Job(
                        id=f"{job_id}.{i:05d}",
                        kind=kind + PART_SUFFIX,
                        status="queued",
                        params={**part, "job": job_id},
                        counts={"attempts": 0},
                        errors=[],
                        created=now,
                    )
                    for i, part in enumerate(parts)
                )
                s.flush()
                return _to_job(row)
        except IntegrityError as exc:
            raise DuplicateError(f"job {job_id!r} already exists", job_id=job_id) from exc

    def job_parts(self, job_id: str, unfinished_only: bool = False) -> list[JobRecord]:
        stmt = (
            select(Job)
            .where(Job.id.like(f"{job_id}.%"), Job.kind.like(f"%{PART_SUFFIX}"))
            .order_by(Job.id)
        )
        if unfinished_only:
            stmt = stmt.where(Job.status.not_in(FINISHED_STATUSES))
        with self._tx() as s:
            return [_to_job(j) for j in s.scalars(stmt)]

    def start_job_part(self, part_id: str) -> JobRecord | None:
        """Mark a part running (its job too, if queued) and count the attempt; None when the
        part or its job is already finished (a redelivered or duplicate message)."""
        parent_id = part_id.rsplit(".", 1)[0]
        now = utcnow()
        with self._tx(write=True) as s:
            # Parent before part, as in complete_job_part: the lock order is the same.
            s.execute(
                update(Job)
                .where(Job.id == parent_id, Job.status == "queued")
                .values(status="running", started=now)
            )
            parent = s.get(Job, parent_id)
            part = s.get(Job, part_id, with_for_update=True)
            if part is None or parent is None:
                raise NotFoundError(f"unknown job part {part_id!r}", job_id=part_id)
            if part.status in FINISHED_STATUSES or parent.status in FINISHED_STATUSES:
                return None
            part.status = "running"
            part.started = now
            part.counts = {
                **(part.counts or {}),
                "attempts": (part.counts or {}).get("attempts", 0) + 1,
            }
            s.flush()
            return _to_job(part)

    def complete_job_part(
        self, part_id: str, counts: dict[str, int], errors: Sequence[Any] = ()
    ) -> tuple[JobRecord, bool]:
        """Record a finished part once: its ``counts`` are added to the job's, its errors
        appended, ``batches_done`` and progress advanced, and the job completed after its last
        part. Returns (the job, whether this call completed it). Recording an already
        finished part changes nothing, so a part run twice is counted once."""
        parent_id = part_id.rsplit(".", 1)[0]
        with self._tx(write=True) as s:
            parent = s.get(Job, parent_id, with_for_update=True)
            part = s.get(Job, part_id, with_for_update=True)
            if part is None or parent is None:
                raise NotFoundError(f"unknown job part {part_id!r}", job_id=part_id)
            if part.status in FINISHED_STATUSES:
                return _to_job(parent), False
            now = utcnow()
            part.status = "succeeded"
            part.finished = now
            part.progress = 1.0
            part.counts = {**(part.counts or {}), **counts}
            part.errors = list(errors)
            total = dict(parent.counts or {})
            for key, value in counts.items():
                total[key] = total.get(key, 0) + value
            total["batches_done"] = total.get("batches_done", 0) + 1
            parent.counts = total
            if errors and len(parent.errors or []) < MAX_JOB_ERRORS:
                parent.errors = [*(parent.errors or []), *errors][:MAX_JOB_ERRORS]
            batches = max(int(total.get("batches", 1)), 1)
            parent.progress = min(1.0, total["batches_done"] / batches)
            completed = False
            if total["batches_done"] >= batches and parent.status in ("queued", "running"):
                parent.status = (parent.params or {}).get("complete_status", "succeeded")
                completed = True
                if parent.status in FINISHED_STATUSES:
                    parent.finished = now
                    parent.started = parent.started or now
            s.flush()
            return _to_job(parent), completed

    def fail_job(self, job_id: str, error: dict[str, Any]) -> JobRecord:
        """Mark an unfinished job (or part) failed with ``error``; a finished one is left as is."""
        with self._tx(write=True) as s:
            row = s.get(Job, job_id, with_for_update=True)
            if row is None:
                raise NotFoundError(f"unknown job {job_id!r}", job_id=job_id)
            if row.status not in FINISHED_STATUSES:
                row.status = "failed"
                row.finished = utcnow()
                row.started = row.started or row.finished
                row.errors = [*(row.errors or []), error][:MAX_JOB_ERRORS]
            s.flush()
            return _to_job(row)

    def job_activity(self) -> datetime | None:
        """The newest sign of work on jobs: an unfinished job's creation or (re)start, or any
        job's finish."""
        unfinished = Job.status.not_in(FINISHED_STATUSES)
        # Bounded by the (status, created) index: jobs finish within a day of their creation.
        recent = Job.created >= utcnow() - timedelta(days=1)
        with self._tx() as s:
            stamps = [
                s.scalar(select(func.max(Job.finished)).where(~unfinished, recent)),
                s.scalar(select(func.max(Job.started)).where(unfinished)),
                s.scalar(select(func.max(Job.created)).where(unfinished)),
            ]
        found = [aware(t) for t in stamps if t is not None]
        return max(found) if found else None  # type: ignore[type-var]

    def unfinished_jobs(self, started_before: datetime | None = None) -> list[JobRecord]:
        """Unfinished jobs and parts; with ``started_before``, only those running since."""
        stmt = select(Job).where(Job.status.not_in(FINISHED_STATUSES)).order_by(Job.id)
        if started_before is not None:
            stmt = stmt.where(Job.status == "running", Job.started < started_before)
        with self._tx() as s:
            return [_to_job(j) for j in s.scalars(stmt)]

    def touch_jobs(self, job_ids: Iterable[str]) -> None:
        """Stamp ``started`` = now on unfinished rows: a redispatch counts as activity."""
        ids = list(job_ids)
        if not ids:
            return
        with self._tx(write=True) as s:
            s.execute(
                update(Job)
                .where(Job.id.in_(ids), Job.status.not_in(FINISHED_STATUSES))
                .values(started=utcnow())
            )

    def switch_collections(
        self,
        live_id: int,
        candidate_id: int,
        name: str,
        retired_name: str,
        expect_live_seq: int | None,
    ) -> bool:
        """Blue/green switch in one transaction: the live collection (named ``name``) is
        renamed ``retired_name`` and the candidate takes ``name``. Returns False when the
        candidate holds ``name`` already (switched before). Refused (ConflictError) when the
        live collection's index_log moved past ``expect_live_seq`` (it changed meanwhile)."""
        try:
            with self._tx(write=True) as s:
                rows = {
                    c.id: c
                    for c in s.scalars(
                        select(Collection)
                        .where(Collection.id.in_([live_id, candidate_id]))
                        .order_by(Collection.id)
                        .with_for_update()
                    )
                }
                live, candidate = rows.get(live_id), rows.get(candidate_id)
                if live is None or candidate is None:
                    raise NotFoundError(f"unknown collection id {live_id} or {candidate_id}")
                if candidate.name == name:
                    return False
                if live.name != name or live.tenant != candidate.tenant:
                    raise ConflictError(
                        f"collection {name!r} is no longer collection {live_id} of tenant "
                        f"{candidate.tenant!r}",
                        collection=name,
                    )
                seq = self._max_seq(s, live_id)
                if expect_live_seq is not None and seq != expect_live_seq:
                    raise ConflictError(
                        f"collection {name!r} changed since the migration began (index "
                        f"log at {seq}, expected {expect_live_seq})",
                        collection=name,
                    )
                live.name = retired_name
                s.flush()
                candidate.name = name
                s.flush()
                self._log_change(s, [live_id, candidate_id], "config")
                return True
        except IntegrityError as exc:
            raise DuplicateError(f"collection {retired_name!r} already exists") from exc

    def create_task_job(
        self, kind: str, params: dict[str, Any], job_id: str | None = None
    ) -> JobRecord:
        """A queued job run by one task (``params["task"]`` names it)."""
        return self.create_job(kind, params, job_id, status="queued")  # type: ignore[attr-defined]
