"""Enrollment through a server: local photos uploaded one person at a time (a request per
person, split at ``--batch-size`` images), or a server-side folder as a job."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from itertools import groupby
from pathlib import Path
from typing import TYPE_CHECKING

from ..service.results import EnrollResult, ImportReport
from .app import console, err_console, progress_bar
from .views import show_job

if TYPE_CHECKING:
    from ..client import FaceIDClient, Job

UPLOAD_BATCH = 16  # the server's default FACEID_API_MAX_BATCH
JOB_BATCH = 32


def images_report(
    results: Iterable[EnrollResult], images: int, seconds: float = 0.0
) -> ImportReport:
    """Sum per-person enrollment results into the report a folder import gives."""
    report = ImportReport(images=images, seconds=seconds)
    people = set()
    for r in results:
        people.add(r.external_id)
        report.faces_added += len(r.face_ids)
        report.duplicates += r.duplicates
        report.multi_face_images += r.multi_face_images
        report.failures.extend(r.failures)
    report.identities = len(people)
    return report


def _people(
    paths: Sequence[Path], external_id: str | None, limit: int | None
) -> list[tuple[str, list[Path]]]:
    """``(person, images)``: the --id images, or each person folder of ``paths[0]``."""
    if external_id is not None:
        return [(external_id, list(paths[:limit]))]
    from ..service import list_folder

    entries = list_folder(paths[0], limit)
    return [(person, [p for _, p in group]) for person, group in groupby(entries, lambda e: e[0])]


def _chunks(items: list[Path], size: int) -> Iterable[list[Path]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def enroll_remote(
    client: FaceIDClient,
    collection: str,
    paths: Sequence[Path],
    external_id: str | None,
    name: str | None,
    batch_size: int | None,
    limit: int | None,
) -> ImportReport:
    """Upload each person's photos with a progress bar over images."""
    people = _people(paths, external_id, limit)
    total = sum(len(images) for _, images in people)
    size = batch_size or UPLOAD_BATCH
    start = time.perf_counter()
    results: list[EnrollResult] = []
    with progress_bar(err_console) as bar:
        task = bar.add_task(f"enrolling into {collection!r}", total=total)
        for person, images in people:
            for chunk in _chunks(images, size):
                results.append(client.enroll(collection, person, chunk, name=name))
                bar.advance(task, len(chunk))
    return images_report(results, total, time.perf_counter() - start)


def enroll_remote_job(
    client: FaceIDClient,
    collection: str,
    folder: Path,
    batch_size: int | None,
    limit: int | None,
    wait: bool,
    json_out: bool,
) -> None:
    """Enroll ``folder``, a path on the server, as a job; follow it with a progress bar."""
    job = client.enroll_job(collection, str(folder), batch_size or JOB_BATCH, limit)
    follow(job, wait, json_out)


def follow(job: Job, wait: bool, json_out: bool) -> None:
    """Print a job's id (``--no-wait``), or wait for it (bar on stderr) and report it."""
    if not wait:
        console.print(job.id)
        return
    show_job(job.wait(progress=not json_out, poll=0.3), json_out)
