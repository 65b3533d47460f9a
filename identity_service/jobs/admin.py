"""Admin jobs: rebuild a collection's index, purge tombstones, migrate a collection to another
model (blue/green).

Reindex runs on a worker: it rebuilds that worker's index of the collection from the database
(an IVF index is trained afresh when the collection is configured or large enough for one),
writes a snapshot into ``<data_dir>/index``, and swaps the new index in while searches go on
against the old one (``IndexFollower.rebuild``). Query nodes that share that snapshot folder
load the new snapshot when they (re)start; a running query node rebuilds its own index in place
with ``FaceService.rebuild_index``, without stopping queries.

Model migration re-embeds the source images (faces do not keep their photos, so the folder the
collection was enrolled from is given again) into a new collection ``<name>__<model>``. When
every batch is done, a final task checks that every (person, photo) of the live collection
has its counterpart in the new one, then in one transaction renames the live collection
``<name>__old_<time>`` and gives the new one its name. Queries resolve the name on every call,
so each sees the old collection or the new one, whole. Writes to the live collection during
the migration make the switch refuse (run the migration again: only new photos are embedded).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConflictError, FaceIDError, UnknownCollectionError
from ..service import FaceService
from ..store import JobRecord
from ..store.job_parts import FINISHED_STATUSES
from ..store.models import utcnow
from ..types import DEFAULT_TENANT
from .dispatch import ADMIN_QUEUE, FINISH_MIGRATION_TASK, PURGE_TASK, REINDEX_TASK
from .enroll import plan_folder_job

REINDEX_KIND = "reindex"
PURGE_KIND = "purge"
MIGRATE_KIND = "migrate_model"


@dataclass(frozen=True)
class AdminOutcome:
    job_id: str
    skipped: bool = False
    status: str = "succeeded"
    counts: dict[str, Any] | None = None


def _task_params(task: str, service: FaceService, collection: str, tenant: str) -> dict[str, Any]:
    coll = service.for_tenant(tenant).collection(collection)
    return {
        "task": task,
        "queue": ADMIN_QUEUE,
        "collection_id": coll.id,
        "collection": coll.name,
        "tenant": tenant,
    }


def create_reindex_job(
    service: FaceService, collection: str, tenant: str = DEFAULT_TENANT
) -> JobRecord:
    params = _task_params(REINDEX_TASK, service, collection, tenant)
    return service.repo.create_task_job(REINDEX_KIND, params)


def create_purge_job(
    service: FaceService, collection: str, tenant: str = DEFAULT_TENANT
) -> JobRecord:
    params = _task_params(PURGE_TASK, service, collection, tenant)
    return service.repo.create_task_job(PURGE_KIND, params)


def _begin(service: FaceService, job_id: str) -> JobRecord | None:
    job = service.repo.get_job(job_id)
    if job.status in FINISHED_STATUSES:
        return None
    return service.repo.update_job(job_id, status="running")


def run_reindex(service: FaceService, job_id: str) -> AdminOutcome:
    job = _begin(service, job_id)
    if job is None:
        return AdminOutcome(job_id, skipped=True)
    coll = service.repo.get_collection_by_id(int(job.params["collection_id"]))
    start = time.perf_counter()
    follower = service.galleries.follower(coll)
    size = follower.rebuild()
    snapshot = follower.snapshot()
    counts = {
        "faces": size,
        "index": follower.index.backend_kind,
        "snapshot": str(snapshot),
        "seconds": round(time.perf_counter() - start, 3),
    }
    service.repo.update_job(job_id, status="succeeded", progress=1.0, counts=counts)
    return AdminOutcome(job_id, counts=counts)


def run_purge(service: FaceService, job_id: str) -> AdminOutcome:
    job = _begin(service, job_id)
    if job is None:
        return AdminOutcome(job_id, skipped=True)
    purged = service.repo.purge(int(job.params["collection_id"]))
    counts = {"identities_purged": purged}
    service.repo.update_job(job_id, status="succeeded", progress=1.0, counts=counts)
    return AdminOutcome(job_id, counts=counts)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")[:60] or "model"


def create_migration_job(
    service: FaceService,
    collection: str,
    model: str,
    source: Path,
    *,
    batch_size: int = 32,
    limit: int | None = None,
    allow_missing: bool = False,
    tenant: str = DEFAULT_TENANT,
    queue: str = "cpu",
) -> JobRecord:
    """Plan re-embedding ``source`` (DIR/<person>/*.jpg) with ``model`` into a new collection
    version. Running it again after a failure reuses the new collection: only what is missing
    there is embedded."""
    scoped = service.for_tenant(tenant)
    live = scoped.collection(collection)
    embedder = service.pipeline(model).embedder
    target_name = f"{live.name}__{_slug(embedder.name)}"
    try:
        target = scoped.collection(target_name)
    except UnknownCollectionError:
        target = scoped.create_collection(target_name, model)
    if target.model_tag != embedder.tag:
        raise ConflictError(
            f"collection {target_name!r} exists with model {target.model_tag}, not {embedder.tag}"
        )
    params = {
        "live_collection_id": live.id,
        "live_collection": live.name,
        "old_model": live.model_tag,
        "old_seq": service.repo.max_seq(live.id),
        "allow_missing": allow_missing,
        "complete_status": "finalizing",
        "finish_task": FINISH_MIGRATION_TASK,
    }
    return plan_folder_job(
        service,
        target,
        source,
        kind=MIGRATE_KIND,
        batch_size=batch_size,
        limit=limit,
        queue=queue,
        params=params,
    )


def run_finish_migration(service: FaceService, job_id: str) -> AdminOutcome:
    repo = service.repo
    job = repo.get_job(job_id)
    if job.status != "finalizing":
        return AdminOutcome(job_id, skipped=True, status=job.status)
    p = job.params
    name = p["live_collection"]
    target = repo.get_collection_by_id(int(p["collection_id"]))
    if target.name == name:  # switched already: the task ran before and died after the switch
        repo.update_job(job_id, status="succeeded", progress=1.0)
        return AdminOutcome(job_id)
    live = repo.get_collection_by_id(int(p["live_collection_id"]))
    missing = repo.known_images(live.id) - repo.known_images(target.id)
    if missing and not p.get("allow_missing"):
        example = ", ".join(f"{ext}/{sha[:12]}" for ext, sha in sorted(missing)[:5])
        error = ConflictError(
            f"{len(missing)} enrolled photo(s) of {name!r} were not found under the source "
            f"folder (e.g. {example}); the live collection is unchanged. Give the folder they "
            "came from, or allow_missing to switch without them",
            missing=len(missing),
        )
        repo.fail_job(job_id, error.to_dict())
        return AdminOutcome(job_id, status="failed")
    service.snapshot(target)  # query nodes sharing the snapshot folder start from it
    retired = f"{name}__old_{utcnow():%Y%m%dT%H%M%S}"
    try:
        repo.switch_collections(live.id, target.id, name, retired, int(p["old_seq"]))
    except FaceIDError as exc:
        repo.fail_job(job_id, exc.to_dict())
        return AdminOutcome(job_id, status="failed")
    counts = {"retired_as": retired, "missing": len(missing)}
    repo.update_job(job_id, status="succeeded", progress=1.0, counts=counts)
    return AdminOutcome(job_id, counts=counts)
