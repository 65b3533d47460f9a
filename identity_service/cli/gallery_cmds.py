"""Gallery verbs on the embedded default or a configured database: db, collections, enroll,
find, delete, and ``demo`` (the README's first command)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn
from rich.table import Table

from ..config import get_settings
from ..service import FaceService, Match, import_folder, list_folder
from .app import app, console, print_json

CollectionOpt = typer.Option("default", "--collection", "-c", help="collection name")
JsonOpt = typer.Option(False, "--json", help="print JSON")

db_app = typer.Typer(help="Database schema (Alembic migrations).", no_args_is_help=True)
app.add_typer(db_app, name="db")


@db_app.command("upgrade")
def db_upgrade(revision: str = typer.Argument("head")) -> None:
    """Migrate the configured database to a revision (default: head)."""
    from ..store import current_revision, upgrade

    url = get_settings().resolved_database_url
    upgrade(url, revision)
    console.print(f"database at revision {current_revision(url)}")


@db_app.command("current")
def db_current() -> None:
    """Show the database's schema revision and the one the code expects."""
    from ..store import current_revision, head_revision

    url = get_settings().resolved_database_url
    console.print(f"database: {current_revision(url) or '(empty)'}; code: {head_revision()}")


def _progress() -> Progress:
    return Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )


@app.command("enroll")
def enroll_command(
    folder: Path = typer.Argument(..., help="DIR/<person>/*.jpg"),
    collection: str = CollectionOpt,
    model: str = typer.Option(None, help="embedder for a new collection"),
    limit: int = typer.Option(None, help="enroll at most this many images"),
    workers: int = typer.Option(None, help="embedding processes (default: FACEID_WORKERS)"),
    job: bool = typer.Option(False, "--job", help="run as a job on the Celery workers"),
    wait: bool = typer.Option(True, "--wait/--no-wait", help="with --job: follow it"),
    json_out: bool = JsonOpt,
) -> None:
    """Enroll every person folder under FOLDER; re-running adds nothing twice."""
    if job:
        from .worker_cmds import enroll_as_job

        enroll_as_job(folder, collection, model, 32, limit, wait, json_out)
        return
    with FaceService(workers=workers) as service:
        coll = service.get_or_create_collection(collection, model)
        total = len(list_folder(folder, limit))
        with _progress() as bar:
            task = bar.add_task(f"enrolling into {collection!r}", total=total)
            report = import_folder(
                service, coll, folder, limit=limit, progress=lambda n: bar.advance(task, n)
            )
        service.snapshot(coll)
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


def _matches_table(title: str, matches: list[Match]) -> Table:
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


@app.command("find")
def find_command(
    image: Path = typer.Argument(..., help="probe image"),
    collection: str = CollectionOpt,
    k: int = typer.Option(5, "-k", help="identities to return"),
    aggregate: str = typer.Option("max", help="max (best face) or mean (of top-m faces)"),
    json_out: bool = JsonOpt,
) -> None:
    """Who is this? Ranked identities; 'unknown' when nobody passes the threshold."""
    if aggregate not in ("max", "mean"):
        raise typer.BadParameter("aggregate must be max or mean")
    with FaceService() as service:
        matches = service.find(collection, image, k=k, aggregate=aggregate)  # type: ignore[arg-type]
    if json_out:
        print_json({"image": str(image), "matches": [m.to_dict() for m in matches]})
        return
    verdict = matches[0].name if matches and matches[0].accepted else "unknown"
    console.print(_matches_table(f"{image.name}: {verdict}", matches))


@app.command("delete")
def delete_command(
    external_id: str = typer.Argument(..., help="the person's id (folder name)"),
    collection: str = CollectionOpt,
) -> None:
    """Delete a person: faces removed from the database and from every index."""
    with FaceService() as service:
        removed = service.delete_identity(collection, external_id)
        service.snapshot(collection)
    console.print(f"deleted {external_id}: {removed} face(s) removed")


@app.command("collections")
def collections_command(json_out: bool = JsonOpt) -> None:
    """List collections with their model and size."""
    with FaceService() as service:
        rows = []
        for coll in service.repo.list_collections():
            counts = service.repo.counts(coll.id)
            rows.append(
                {
                    "name": coll.name,
                    "tenant": coll.tenant,
                    "model": coll.model_tag,
                    "identities": counts.identities,
                    "faces": counts.faces,
                    "threshold": service.threshold(coll),
                }
            )
    if json_out:
        print_json(rows)
        return
    table = Table(title="collections")
    for col in ("name", "tenant", "model", "identities", "faces", "threshold"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            *(str(r[c]) for c in ("name", "tenant", "model", "identities", "faces", "threshold"))
        )
    console.print(table)


@app.command("demo")
def demo_command(
    folder: Path = typer.Option(None, "--dir", help="DIR/<person>/*.jpg (default: shared LFW)"),
    limit: int = typer.Option(1500, help="images to enroll (0: all)"),
    collection: str = typer.Option("demo", "--collection", "-c"),
    workers: int = typer.Option(2, help="embedding processes"),
) -> None:
    """Enroll a folder of faces, then find and verify: the main job, end to end."""
    from .demo import run_demo

    folder = folder or get_settings().lfw_dir / "images"
    run_demo(folder, limit or None, collection, workers)
