"""Folder import, deepface style: ``DIR/<identity>/*.jpg`` enrolls each sub-folder as a person."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import DatasetError, FaceIDError
from ..imaging import EncodedImage, read_image_bytes
from ..pipeline import FacePipeline
from ..store import CollectionRecord, NewFace
from .enrollment import new_face, pick_face
from .facade import FaceService
from .results import ImageFailure, ImportReport

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})


def list_folder(root: Path, limit: int | None = None) -> list[tuple[str, Path]]:
    """``(identity, image path)`` for every image one level below a person's folder, sorted."""
    if not root.is_dir():
        raise DatasetError(f"not a folder: {root} (expected DIR/<person>/*.jpg)")
    entries = [
        (person.name, image)
        for person in sorted(p for p in root.iterdir() if p.is_dir())
        for image in sorted(person.iterdir())
        if image.suffix.lower() in IMAGE_SUFFIXES and image.is_file()
    ]
    if not entries:
        raise DatasetError(f"no images found under {root}/<person>/")
    return entries[:limit] if limit else entries


def import_folder(
    service: FaceService,
    collection: CollectionRecord,
    root: Path,
    *,
    limit: int | None = None,
    chunk: int = 64,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Enroll a folder tree; re-running it adds nothing. Images are embedded ``chunk`` at a
    time (across people) so the pipeline batches and uses its worker processes.

    Each file is read once: its bytes are hashed (to skip photos already stored) and then
    decoded by the pipeline. At most ``chunk`` new images are held in memory at a time."""
    start = time.perf_counter()
    entries = list_folder(root, limit)
    report = ImportReport(images=len(entries))
    known = service.repo.known_images(collection.id)
    pipeline = service.pipeline(collection.model)
    batch: list[_NewImage] = []
    handled = 0  # entries read since progress was last told
    for person, path in entries:
        image = _read_new(person, path, known, report)
        handled += 1
        if image is not None:
            batch.append(image)
        if len(batch) == chunk:
            _enroll_batch(service, pipeline, collection, root, batch, report)
            _tell(progress, handled)
            batch, handled = [], 0
    if batch:
        _enroll_batch(service, pipeline, collection, root, batch, report)
    _tell(progress, handled)
    service.galleries.notify_changed(collection)
    report.identities = len({person for person, _ in entries})
    report.seconds = time.perf_counter() - start
    return report


@dataclass(frozen=True)
class _NewImage:
    person: str
    path: Path
    image: EncodedImage


def _read_new(
    person: str, path: Path, known: set[tuple[str, str]], report: ImportReport
) -> _NewImage | None:
    """The image, read once; ``None`` when it is a duplicate or cannot be read (counted)."""
    try:
        image = read_image_bytes(path)
    except OSError as exc:
        report.failures.append(ImageFailure(str(path), "unreadable", str(exc)))
        return None
    except FaceIDError as exc:
        report.failures.append(ImageFailure(str(path), exc.code, exc.message))
        return None
    if (person, image.sha256) in known:
        report.duplicates += 1
        return None
    known.add((person, image.sha256))
    return _NewImage(person, path, image)


def _enroll_batch(
    service: FaceService,
    pipeline: FacePipeline,
    collection: CollectionRecord,
    root: Path,
    batch: list[_NewImage],
    report: ImportReport,
) -> None:
    outcomes = pipeline.represent_batch([item.image.data for item in batch])
    by_person: dict[str, list[NewFace]] = defaultdict(list)
    for item, outcome in zip(batch, outcomes, strict=True):
        pick = pick_face(outcome, str(item.path))
        if pick.failure is not None:
            report.failures.append(pick.failure)
        report.multi_face_images += pick.multi_face
        if pick.face is not None:
            by_person[item.person].append(new_face(pick.face, item.image.sha256))
    for person, faces in by_person.items():
        try:
            identity = service.repo.upsert_identity(
                collection.id, person, name=person.replace("_", " ")
            )
            added = service.repo.add_faces(collection.id, identity.id, faces)
        except FaceIDError as exc:
            report.failures.append(ImageFailure(f"{root / person}", exc.code, exc.message))
            continue
        report.faces_added += len(added)
        report.duplicates += len(faces) - len(added)


def _tell(progress: Callable[[int], None] | None, done: int) -> None:
    if progress and done:
        progress(done)
