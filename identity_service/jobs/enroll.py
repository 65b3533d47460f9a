"""Enrollment jobs: a folder tree split into batches, each batch a task on any worker.

Counting, so that a job's counts are exact even when a batch is run twice (a worker killed
after its faces were committed but before the batch was recorded; the message is redelivered):

* at submission every image is hashed, and images whose (person, hash) the collection already
  holds are counted as ``duplicates`` and left out of the batches (as ``import_folder`` does);
* a batch counts every face it stores *or finds already stored* as ``faces_added``: such a face
  can only come from an earlier attempt of this batch (or a concurrent writer of the same
  photo), and ``recovered`` says how many there were;
* the repository records a batch's counts once (``complete_job_part``), atomically, and the
  last batch marks the job finished.

Image paths are stored relative to the folder, whose absolute path every worker must see
(a shared volume).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..errors import FaceIDError
from ..imaging import image_sha256
from ..service import FaceService, list_folder
from ..service.enrollment import new_face, pick_face
from ..store import CollectionRecord, JobRecord, NewFace
from .dispatch import ADMIN_QUEUE, ENROLL_PART_TASK, Dispatcher

ENROLL_KIND = "enroll"


@dataclass(frozen=True)
class PartOutcome:
    """What one run of a batch task did."""

    part_id: str
    skipped: bool = False  # the batch (or its job) was already finished
    images: int = 0
    faces_added: int = 0
    recovered: int = 0
    failed: int = 0
    job_completed: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _error(image: str, code: str, message: str) -> dict[str, str]:
    return {"image": image[:300], "code": code, "message": message[:500]}


def plan_folder_job(
    service: FaceService,
    collection: CollectionRecord,
    root: Path,
    *,
    kind: str = ENROLL_KIND,
    batch_size: int = 32,
    limit: int | None = None,
    queue: str = "cpu",
    params: dict[str, Any] | None = None,
    job_id: str | None = None,
) -> JobRecord:
    """Hash the folder's images, drop those already enrolled, and create the job row with one
    queued part per batch of ``batch_size`` images. Nothing is sent yet (see ``dispatch_job``).
    A given ``job_id`` that exists already is a :class:`DuplicateError`."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    root = Path(root).resolve()
    entries = list_folder(root, limit)
    items, duplicates, errors = _new_images(root, entries, service.repo.known_images(collection.id))
    batches = [items[i : i + batch_size] for i in range(0, len(items), batch_size)]
    counts = {
        "images": len(entries),
        "done": len(entries) - len(items),
        "faces_added": 0,
        "recovered": 0,
        "duplicates": duplicates,
        "failed": len(errors),
        "multi_face_images": 0,
    }
    job_params = {
        "collection_id": collection.id,
        "collection": collection.name,
        "tenant": collection.tenant,
        "model": collection.model_tag,
        "root": str(root),
        "batch_size": batch_size,
        "limit": limit,
        **(params or {}),
    }
    parts = [
        {
            "task": ENROLL_PART_TASK,
            "queue": queue,
            "collection_id": collection.id,
            "root": str(root),
            "items": batch,
        }
        for batch in batches
    ]
    return service.repo.create_job_with_parts(
        kind, job_params, parts, counts=counts, errors=errors, job_id=job_id
    )


def _new_images(
    root: Path, entries: list[tuple[str, Path]], known: set[tuple[str, str]]
) -> tuple[list[list[str]], int, list[dict[str, str]]]:
    """The images of ``entries`` the collection lacks, as [person, path under root, sha256]
    (each (person, hash) once); how many it already holds; and the unreadable ones."""
    items: list[list[str]] = []
    errors: list[dict[str, str]] = []
    duplicates = 0
    for person, path in entries:
        rel = str(path.relative_to(root))
        try:
            # Hashed here, decoded by a worker: a part's message carries only its row id, so
            # the bytes cannot travel with it, and each side reads the file once.
            sha = image_sha256(path)
        except OSError as exc:
            errors.append(_error(rel, "unreadable", str(exc)))
            continue
        if (person, sha) in known:
            duplicates += 1
            continue
        known.add((person, sha))
        items.append([person, rel, sha])
    return items, duplicates, errors


def run_enroll_part(service: FaceService, part_id: str, dispatcher: Dispatcher) -> PartOutcome:
    """Embed one batch as a whole, store its faces, record the batch on its job."""
    repo = service.repo
    part = repo.start_job_part(part_id)
    if part is None:
        return PartOutcome(part_id, skipped=True)
    coll = repo.get_collection_by_id(int(part.params["collection_id"]))
    root = Path(part.params["root"])
    items: list[list[str]] = part.params["items"]
    outcomes = service.pipeline(coll.model).represent_batch([root / rel for _, rel, _ in items])
    errors: list[dict[str, str]] = []
    multi = 0
    by_person: dict[str, list[NewFace]] = defaultdict(list)
    for (person, rel, sha), outcome in zip(items, outcomes, strict=True):
        pick = pick_face(outcome, rel)
        if pick.failure is not None:
            errors.append(_error(pick.failure.image, pick.failure.code, pick.failure.message))
        multi += pick.multi_face
        if pick.face is not None:
            by_person[person].append(new_face(pick.face, sha))
    stored = recovered = 0
    for person, faces in by_person.items():
        try:
            identity = repo.upsert_identity(coll.id, person, name=person.replace("_", " "))
            added = repo.add_faces(coll.id, identity.id, faces)
        except FaceIDError as exc:
            errors.extend(_error(f"{person}/", exc.code, exc.message) for _ in faces)
            continue
        stored += len(faces)
        recovered += len(faces) - len(added)
    counts = {
        "done": len(items),
        "faces_added": stored,
        "recovered": recovered,
        "failed": len(errors),
        "multi_face_images": multi,
    }
    job, completed = repo.complete_job_part(part_id, counts, errors)
    if completed and job.status == "finalizing":
        dispatcher.send(job.params["finish_task"], job.id, ADMIN_QUEUE)
    return PartOutcome(
        part_id,
        images=len(items),
        faces_added=stored,
        recovered=recovered,
        failed=len(errors),
        job_completed=completed,
    )
