"""Repository part for jobs, calibrations and API keys."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError

from ..errors import DuplicateError, NotFoundError
from .job_parts import FINISHED_STATUSES, PART_SUFFIX, JobPartsMixin, _to_job
from .models import ApiKey, Calibration, Collection, Job, utcnow
from .records import ApiKeyRecord, CalibrationRecord, JobRecord, aware


def _to_calibration(c: Calibration) -> CalibrationRecord:
    return CalibrationRecord(
        id=c.id,
        model=c.model,
        dataset=c.dataset,
        collection_id=c.collection_id,
        target_far=c.target_far,
        threshold=c.threshold,
        tar=c.tar,
        n_pairs=c.n_pairs,
        report=dict(c.report or {}),
        created=aware(c.created),
    )


def _to_key(k: ApiKey) -> ApiKeyRecord:
    return ApiKeyRecord(
        id=k.id,
        key_hash=k.key_hash,
        tenant=k.tenant,
        scopes=list(k.scopes or []),
        name=k.name,
        created=aware(k.created),  # type: ignore[arg-type]
        revoked=aware(k.revoked),
    )


class AdminMixin(JobPartsMixin):
    # ---- jobs -------------------------------------------------------------------------

    def create_job(
        self,
        kind: str,
        params: dict[str, Any] | None = None,
        job_id: str | None = None,
        status: str = "pending",
    ) -> JobRecord:
        """A new job; ``job_id`` defaults to a fresh uuid (a Celery task id may be passed)."""
        row = Job(
            id=job_id or uuid.uuid4().hex, kind=kind, status=status, params=dict(params or {})
        )
        try:
            with self._tx(write=True) as s:
                s.add(row)
                s.flush()
                return _to_job(row)
        except IntegrityError as exc:
            raise DuplicateError(f"job {row.id!r} already exists", job_id=row.id) from exc

    def get_job(self, job_id: str) -> JobRecord:
        with self._tx() as s:
            row = s.get(Job, job_id)
            if row is None:
                raise NotFoundError(f"unknown job {job_id!r}", job_id=job_id)
            return _to_job(row)

    def update_job(
        self,
        job_id: str,
        *,
        status: str | None = None,
        progress: float | None = None,
        counts: dict[str, Any] | None = None,
        add_errors: Iterable[Any] = (),
    ) -> JobRecord:
        """Update a job. ``counts`` keys are merged; ``add_errors`` are appended. Moving to
        "running" stamps ``started``, to a finished status stamps ``finished``."""
        with self._tx(write=True) as s:
            row = s.get(Job, job_id, with_for_update=True)
            if row is None:
                raise NotFoundError(f"unknown job {job_id!r}", job_id=job_id)
            if status is not None:
                row.status = status
                if status == "running" and row.started is None:
                    row.started = utcnow()
                if status in FINISHED_STATUSES:
                    row.finished = utcnow()
                    row.started = row.started or row.finished
            if progress is not None:
                row.progress = float(progress)
            if counts:
                row.counts = {**(row.counts or {}), **counts}
            extra = list(add_errors)
            if extra:
                row.errors = [*(row.errors or []), *extra]
            s.flush()
            return _to_job(row)

    def list_jobs(
        self,
        kind: str | None = None,
        status: str | None = None,
        limit: int = 50,
        *,
        include_parts: bool = False,
        tenant: str | None = None,
    ) -> list[JobRecord]:
        """The newest jobs, filtered (``tenant``: the one in the job's params) before the
        limit is applied."""
        stmt = select(Job).order_by(Job.created.desc(), Job.id).limit(limit)
        if tenant is not None:
            stmt = stmt.where(func.coalesce(Job.params["tenant"].as_string(), "default") == tenant)
        if kind is not None:
            stmt = stmt.where(Job.kind == kind)
        elif not include_parts:
            stmt = stmt.where(Job.kind.not_like(f"%{PART_SUFFIX}"))
        if status is not None:
            stmt = stmt.where(Job.status == status)
        with self._tx() as s:
            return [_to_job(j) for j in s.scalars(stmt)]

    # ---- calibrations -----------------------------------------------------------------

    def add_calibration(
        self,
        model: str,
        dataset: str,
        target_far: float,
        threshold: float,
        tar: float,
        n_pairs: int,
        report: dict[str, Any] | None = None,
        collection_id: int | None = None,
    ) -> CalibrationRecord:
        row = Calibration(
            model=model,
            dataset=dataset,
            collection_id=collection_id,
            target_far=float(target_far),
            threshold=float(threshold),
            tar=float(tar),
            n_pairs=int(n_pairs),
            report=dict(report or {}),
        )
        with self._tx(write=True) as s:
            # Query nodes cache the 1:1 threshold in force: tell the collections it applies to.
            affected = self._collections_of_model(s, model, collection_id)
            s.add(row)
            s.flush()
            self._log_change(s, affected, "config")
            return _to_calibration(row)

    def _collections_of_model(self, s: Any, model: str, collection_id: int | None) -> list[int]:
        """Ids of the collections a calibration of ``model`` (a tag) on ``collection_id`` (None:
        model-wide) applies to, locked in id order."""
        if collection_id is not None:
            self._collection(s, collection_id, lock=True)
            return [collection_id]
        name, _, version = model.rpartition("@")
        stmt = (
            select(Collection.id)
            .where(Collection.model == name, Collection.model_version == version)
            .order_by(Collection.id)
            .with_for_update(key_share=True)
        )
        return list(s.scalars(stmt))

    def latest_calibration(
        self,
        model: str,
        dataset: str | None = None,
        target_far: float | None = None,
        collection_id: int | None = None,
    ) -> CalibrationRecord | None:
        stmt = (
            select(Calibration)
            .where(Calibration.model == model)
            .order_by(Calibration.created.desc(), Calibration.id.desc())
            .limit(1)
        )
        if dataset is not None:
            stmt = stmt.where(Calibration.dataset == dataset)
        if target_far is not None:
            stmt = stmt.where(Calibration.target_far == target_far)
        if collection_id is not None:
            stmt = stmt.where(Calibration.collection_id == collection_id)
        with self._tx() as s:
            row = s.scalar(stmt)
            return None if row is None else _to_calibration(row)

    def calibration_in_force(
        self, model: str, collection_id: int | None = None
    ) -> CalibrationRecord | None:
        """The newest calibration of ``model`` made on this collection, else the newest
        model-wide one (made on no collection); one query, as verify and find ask every time."""
        scope = Calibration.collection_id.is_(None)
        if collection_id is not None:
            scope = or_(scope, Calibration.collection_id == collection_id)
        stmt = (
            select(Calibration)
            .where(Calibration.model == model, scope)
            .order_by(
                Calibration.collection_id.is_(None),  # the collection's own first
                Calibration.created.desc(),
                Calibration.id.desc(),
            )
            .limit(1)
        )
        with self._tx() as s:
            row = s.scalar(stmt)
            return None if row is None else _to_calibration(row)

    def list_calibrations(self, model: str | None = None) -> list[CalibrationRecord]:
        stmt = select(Calibration).order_by(Calibration.id)
        if model is not None:
            stmt = stmt.where(Calibration.model == model)
        with self._tx() as s:
            return [_to_calibration(c) for c in s.scalars(stmt)]

    # ---- API keys (only hashes are stored) ---------------------------------------------

    def add_api_key(
        self,
        key_hash: str,
        tenant: str = "default",
        scopes: Iterable[str] = (),
        name: str | None = None,
    ) -> ApiKeyRecord:
        row = ApiKey(key_hash=key_hash, tenant=tenant, scopes=list(scopes), name=name)
        try:
            with self._tx(write=True) as s:
                s.add(row)
                s.flush()
                return _to_key(row)
        except IntegrityError as exc:
            raise DuplicateError("an API key with this hash already exists") from exc

    def get_api_key(self, key_hash: str) -> ApiKeyRecord | None:
        """The key with this hash, revoked or not (check ``.active``)."""
        with self._tx() as s:
            row = s.scalar(select(ApiKey).where(ApiKey.key_hash == key_hash))
            return None if row is None else _to_key(row)

    def api_keys_version(self) -> tuple[int, int]:
        """(keys, revoked keys). Keys are never deleted and a revocation is never undone, so
        every creation or revocation moves one of them: nodes that keep keys in memory read it
        to know when to forget them (``api/key_cache.py``)."""
        with self._tx() as s:
            total, revoked = s.execute(
                select(func.count(ApiKey.id), func.count(ApiKey.revoked))
            ).one()
            return int(total), int(revoked)

    def list_api_keys(self, tenant: str | None = None) -> list[ApiKeyRecord]:
        stmt = select(ApiKey).order_by(ApiKey.id)
        if tenant is not None:
            stmt = stmt.where(ApiKey.tenant == tenant)
        with self._tx() as s:
            return [_to_key(k) for k in s.scalars(stmt)]

    def revoke_api_key(self, key_id: int) -> ApiKeyRecord:
        with self._tx(write=True) as s:
            row = s.get(ApiKey, key_id, with_for_update=True)
            if row is None:
                raise NotFoundError(f"unknown API key id {key_id}", key_id=key_id)
            if row.revoked is None:
                row.revoked = utcnow()
            s.flush()
            return _to_key(row)
