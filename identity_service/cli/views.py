"""What the verbs print, shared by the local and the ``--server`` paths.

Each view reads the fields of the client's dataclasses (``Match``, ``FaceInfo``,
``Verification``, ``Analysis``, ``Job``); local results are converted to them first, so one
table serves both doors.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from rich.table import Table

from .app import console, print_json

if TYPE_CHECKING:
    from ..client.models import Analysis, FaceInfo, Job
    from ..service.results import ImportReport, Match, Matches
    from ..store import JobRecord
    from ..types import OperatingPoint


class VerificationLike(Protocol):
    """The fields both ``types.Verification`` and the client's ``Verification`` carry."""

    verified: bool
    distance: float
    threshold: float
    threshold_source: str
    model: str
    timings_ms: dict[str, float]


def _box(box: Sequence[float]) -> str:
    return ", ".join(f"{v:.0f}" for v in box)


# -- find ---------------------------------------------------------------------------------------
def matches_table(title: str, matches: Sequence[Match]) -> Table:
    table = Table(title=title)
    for col in ("rank", "identity", "similarity", "distance", "decision"):
        table.add_column(col)
    for m in matches:
        decision = "[green]match[/green]" if m.accepted else "below threshold"
        table.add_row(
            str(m.rank + 1),
            m.name or m.external_id,
            f"{m.similarity:.4f}",
            f"{m.distance:.4f}",
            decision,
        )
    return table


def show_matches(image: str, name: str, matches: Matches, json_out: bool) -> None:
    if json_out:
        print_json({"image": image, **matches.to_dict()})
        return
    best = matches.accepted
    verdict = (best.name or best.external_id) if best else "unknown"
    console.print(matches_table(f"{name}: {verdict}", matches))
    console.print(operating_point_line(matches.operating_point))


def operating_point_line(point: OperatingPoint) -> str:
    target = "" if point.target_fpir is None else f"FPIR {point.target_fpir:g}, "
    return f"[dim]operating point: {target}distance <= {point.threshold:.4f} ({point.source})[/dim]"


# -- represent ----------------------------------------------------------------------------------
def show_faces(image: str, faces: Sequence[FaceInfo], json_out: bool) -> None:
    if json_out:
        print_json({"image": image, "faces": [f.to_dict() for f in faces]})
        return
    table = Table(title=f"{len(faces)} face(s) in {image}")
    for col in ("#", "box", "score", "model", "embedding[:4]"):
        table.add_column(col)
    for f in faces:
        head = [] if f.embedding is None else f.embedding[:4]
        table.add_row(
            str(f.index),
            _box(f.box),
            f"{f.score:.3f}",
            f.model,
            " ".join(f"{v:+.3f}" for v in head),
        )
    console.print(table)


# -- verify -------------------------------------------------------------------------------------
def show_verification(result: VerificationLike, as_json: dict[str, Any] | None) -> None:
    """``as_json``: the result's JSON when ``--json`` was asked for, else None."""
    if as_json is not None:
        print_json(as_json)
        return
    verdict = "[green]same person[/green]" if result.verified else "[red]different people[/red]"
    total = result.timings_ms.get("total")
    took = f"; {total:.0f} ms" if total is not None else ""
    console.print(
        f"{verdict}: distance {result.distance:.4f} vs threshold {result.threshold:.4f} "
        f"({result.model}; {result.threshold_source}){took}"
    )


# -- analyze ------------------------------------------------------------------------------------
def _attribute(name: str, attr: dict[str, Any] | None) -> str:
    if attr is None:
        return ""
    if name == "age":
        return f"{attr['value']:.0f}"
    score = (attr.get("scores") or {}).get(attr["value"])
    return f"{attr['value']}" if score is None else f"{attr['value']} ({score:.2f})"


def show_analyses(
    image: str, faces: Sequence[Analysis], wanted: Sequence[str], json_out: bool
) -> None:
    if json_out:
        print_json({"image": image, "faces": [f.to_dict() for f in faces]})
        return
    table = Table(title=f"{len(faces)} face(s) in {image}")
    for col in ("#", "box", *wanted):
        table.add_column(col)
    for f in faces:
        cells = [_attribute(a, getattr(f, a)) for a in wanted]
        table.add_row(str(f.index), _box(f.box), *cells)
    console.print(table)


# -- enroll -------------------------------------------------------------------------------------
def show_import(report: ImportReport, json_out: bool) -> None:
    if json_out:
        print_json(report.to_dict())
        return
    console.print(
        f"{report.images} images of {report.identities} people: {report.faces_added} faces "
        f"added, {report.duplicates} already enrolled, {len(report.failures)} failed, "
        f"{report.multi_face_images} with several faces (centre-most enrolled); "
        f"{report.seconds:.1f} s ({report.images / max(report.seconds, 1e-9):.1f} images/s)"
    )
    for failure in report.failures[:20]:
        console.print(f"  [yellow]{failure.code}[/yellow] {failure.image}: {failure.message}")


# -- jobs ---------------------------------------------------------------------------------------
MAX_ERRORS = 50
_ENROLL_COUNTS = frozenset(
    {"images", "done", "faces_added", "duplicates", "failed", "recovered", "batches"}
    | {"batches_done", "multi_face_images"}
)


def job_of(record: JobRecord) -> Job:
    """A local job row as the client's ``Job`` (what the API would send for it)."""
    from ..client.models import Job
    from ..jobs import job_summary

    return Job.from_dict({**job_summary(record), "error_samples": record.errors[:MAX_ERRORS]})


def show_job(job: Job, json_out: bool) -> None:
    if json_out:
        print_json({**job.to_dict(), "error_list": job.error_samples[:MAX_ERRORS]})
        return
    c = job.counts
    colour = {"succeeded": "green", "failed": "red"}.get(job.status, "yellow")
    console.print(f"job {job.id} ({job.kind}): [{colour}]{job.status}[/{colour}]")
    if "images" in c:
        console.print(
            f"  {c.get('images', 0)} images: {c.get('faces_added', 0)} faces added, "
            f"{c.get('duplicates', 0)} already enrolled, {c.get('failed', 0)} failed, "
            f"{c.get('recovered', 0)} recovered from an interrupted batch; "
            f"batches {c.get('batches_done', 0)}/{c.get('batches', 0)}"
        )
    other = {k: v for k, v in c.items() if k not in _ENROLL_COUNTS}
    if other:
        console.print("  " + ", ".join(f"{k}={v}" for k, v in other.items()))
    for error in job.error_samples[:20]:
        where = error.get("image") or error.get("part") or ""
        console.print(f"  [yellow]{error.get('code')}[/yellow] {where}: {error.get('message')}")
    if job.errors > 20:
        console.print(f"  ... {job.errors - 20} more (faceid job {job.id} --json)")


def show_jobs(jobs: Sequence[Job], json_out: bool) -> None:
    if json_out:
        print_json([j.to_dict() for j in jobs])
        return
    table = Table(title="jobs")
    for col in ("id", "kind", "status", "progress", "collection", "counts", "created"):
        table.add_column(col)
    for j in jobs:
        c = j.counts
        counts = (
            f"{c.get('faces_added', 0)} added / {c.get('images', 0)}, {c.get('failed', 0)} failed"
            if "images" in c
            else ", ".join(f"{k}={v}" for k, v in c.items() if k != "snapshot")
        )
        collection = j.params.get("live_collection") or j.params.get("collection", "")
        created = str(j.created)[:19].replace("T", " ")
        table.add_row(j.id, j.kind, j.status, f"{j.progress:.0%}", str(collection), counts, created)
    console.print(table)
