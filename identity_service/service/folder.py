"""Folder import, deepface style: ``DIR/<identity>/*.jpg`` enrolls each sub-folder as a person."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

from ..errors import DatasetError, FaceIDError
from ..store import CollectionRecord
from .facade import FaceService
from .results import EnrollResult, ImageFailure, ImportReport

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
    time (across people) so the pipeline batches and uses its worker processes."""
    from ..imaging import image_sha256

    start = time.perf_counter()
    entries = list_folder(root, limit)
    report = ImportReport(images=len(entries))
    known = service.repo.known_images(collection.id)
    todo: list[tuple[str, Path, str]] = []
    for person, path in entries:
        try:
            sha = image_sha256(path)
        except OSError as exc:
            report.failures.append(ImageFailure(str(path), "unreadable", str(exc)))
            continue
        if (person, sha) in known:
            report.duplicates += 1
            continue
        known.add((person, sha))
        todo.append((person, path, sha))
    if progress and len(todo) < len(entries):
        progress(len(entries) - len(todo))
    pipeline = service.pipeline(collection.model)
    identities: set[str] = {person for person, _ in entries}
    for i in range(0, len(todo), chunk):
        part = todo[i : i + chunk]
        outcomes = pipeline.represent_batch([path for _, path, _ in part])
        by_person: dict[str, list] = defaultdict(list)
        for (person, path, sha), outcome in zip(part, outcomes, strict=True):
            holder = EnrollResult(external_id=person, identity_id=-1)
            face = service._one_face(outcome, str(path), "centre", holder)
            report.failures.extend(holder.failures)
            report.multi_face_images += holder.multi_face_images
            if face is not None:
                by_person[person].append(service._new_face(face, sha))
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
        if progress:
            progress(len(part))
    service.galleries.notify_changed(collection)
    report.identities = len(identities)
    report.seconds = time.perf_counter() - start
    return report
