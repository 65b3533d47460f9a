"""Gallery verbs on the embedded default or a configured database: db, collections, enroll,
find, delete, and ``demo`` (the README's first command)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from ..config import get_settings
from ..service import FaceService
from ..service.results import ImportReport
from .app import app, console, print_json, progress_bar
from .remote import ApiKeyOpt, ServerOpt, ensure_collection, local_only, remote
from .remote_enroll import enroll_remote, enroll_remote_job, images_report
from .views import show_import, show_matches

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


@app.command("enroll")
def enroll_command(
    paths: list[Path] = typer.Argument(
        ..., help="DIR/<person>/*.jpg, or image files of one person (with --id)"
    ),
    collection: str = CollectionOpt,
    external_id: str = typer.Option(None, "--id", help="the person, when PATHS are images"),
    name: str = typer.Option(None, "--name", help="display name of --id"),
    model: str = typer.Option(None, help="embedder for a new collection"),
    limit: int = typer.Option(None, help="enroll at most this many images"),
    workers: int = typer.Option(None, help="embedding processes (default: FACEID_WORKERS)"),
    batch_size: int = typer.Option(
        None, "--batch-size", help="images per task (--job, default 32) or request (--server, 16)"
    ),
    job: bool = typer.Option(
        False, "--job", help="run as a job on the workers (with --server: DIR is on the server)"
    ),
    wait: bool = typer.Option(True, "--wait/--no-wait", help="with --job: follow it"),
    json_out: bool = JsonOpt,
    server: str = ServerOpt,
    api_key: str = ApiKeyOpt,
) -> None:
    """Enroll every person folder under a folder (or images of one person with --id);
    re-running adds nothing twice."""
    if job and (external_id is not None or len(paths) != 1):
        raise typer.BadParameter("--job enrolls one folder DIR/<person>/*.jpg, not --id images")
    # With --server --job the folder is on the server: it need not exist here.
    if not job and (external_id is None) != _is_folder(paths):
        raise typer.BadParameter("give one folder DIR/<person>/*.jpg, or image files with --id")
    if server:
        local_only(workers=workers)
        with remote(server, api_key) as client:
            ensure_collection(client, collection, model)
            if job:
                enroll_remote_job(client, collection, paths[0], batch_size, limit, wait, json_out)
                return
            report = enroll_remote(client, collection, paths, external_id, name, batch_size, limit)
        show_import(report, json_out)
        return
    if job:
        from .worker_cmds import enroll_as_job

        enroll_as_job(paths[0], collection, model, batch_size or 32, limit, wait, json_out)
        return
    show_import(
        _enroll_local(paths, collection, external_id, name, model, limit, workers), json_out
    )


def _is_folder(paths: list[Path]) -> bool:
    return len(paths) == 1 and paths[0].is_dir()


def _enroll_local(
    paths: list[Path],
    collection: str,
    external_id: str | None,
    name: str | None,
    model: str | None,
    limit: int | None,
    workers: int | None,
) -> ImportReport:
    from ..service import FaceService, import_folder, list_folder

    with FaceService.embedded(workers=workers) as service:
        coll = service.get_or_create_collection(collection, model)
        if external_id is not None:
            report = images_report(
                [service.enroll(coll, external_id, paths[:limit], name=name)],
                len(paths[:limit]),
            )
        else:
            total = len(list_folder(paths[0], limit))
            with progress_bar(console) as bar:
                task = bar.add_task(f"enrolling into {collection!r}", total=total)
                report = import_folder(
                    service, coll, paths[0], limit=limit, progress=lambda n: bar.advance(task, n)
                )
        service.snapshot(coll)
    return report


@app.command("find")
def find_command(
    image: Path = typer.Argument(None, help="probe image (or give --embedding)"),
    collection: str = CollectionOpt,
    k: int = typer.Option(5, "-k", help="identities to return"),
    aggregate: str = typer.Option("max", help="max (best face) or mean (of top-m faces)"),
    fpir: float = typer.Option(None, help="FPIR to aim at (default: the collection's target)"),
    threshold: float = typer.Option(None, help="a fixed cosine-distance threshold instead"),
    embedding: Path = typer.Option(
        None,
        "--embedding",
        help="probe with an embedding of the collection's model instead of an image: a .npy "
        "file or a JSON list (for callers that embed at the edge or on GPU workers; the server "
        "runs no model for it)",
    ),
    json_out: bool = JsonOpt,
    server: str = ServerOpt,
    api_key: str = ApiKeyOpt,
) -> None:
    """Who is this? Ranked identities; 'unknown' when nobody passes the operating point (the
    threshold at which the gallery accepts its target FPIR of strangers)."""
    if aggregate not in ("max", "mean"):
        raise typer.BadParameter("aggregate must be max or mean")
    if (image is None) == (embedding is None):
        raise typer.BadParameter("give a probe image or --embedding, not both")
    options = {"k": k, "aggregate": aggregate, "fpir": fpir, "threshold": threshold}
    vector = _read_embedding(embedding) if embedding is not None else None
    probe = image if image is not None else embedding
    assert probe is not None
    if server:
        with remote(server, api_key) as client:
            if vector is not None:
                matches = client.find(collection, embedding=vector, **options)  # type: ignore[arg-type]
            else:
                matches = client.find(collection, image, **options)  # type: ignore[arg-type]
    else:
        from ..service import FaceService

        with FaceService.embedded() as service:
            query = vector if vector is not None else image
            matches = service.find(collection, query, **options)  # type: ignore[arg-type]
    show_matches(str(probe), probe.name, matches, json_out)


def _read_embedding(path: Path):  # type: ignore[no-untyped-def]
    import json

    import numpy as np

    try:
        if path.suffix == ".npy":
            vector = np.load(path, allow_pickle=False)
        else:
            vector = np.asarray(json.loads(path.read_text()), dtype=np.float32)
    except (OSError, ValueError) as exc:
        raise typer.BadParameter(f"cannot read an embedding from {path}: {exc}") from exc
    if vector.ndim != 1:
        raise typer.BadParameter(f"{path}: one embedding (a 1-d vector), not shape {vector.shape}")
    return vector.astype(np.float32)


@app.command("delete")
def delete_command(
    external_id: str = typer.Argument(..., help="the person's id (folder name)"),
    collection: str = CollectionOpt,
) -> None:
    """Delete a person: faces removed from the database and from every index."""
    with FaceService.embedded() as service:
        removed = service.delete_identity(collection, external_id)
        service.snapshot(collection)
    console.print(f"deleted {external_id}: {removed} face(s) removed")


@app.command("collections")
def collections_command(json_out: bool = JsonOpt) -> None:
    """List collections with their model and size."""
    with FaceService.embedded() as service:
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
