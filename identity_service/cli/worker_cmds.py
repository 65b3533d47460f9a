"""Job verbs: ``worker`` (a Celery worker), ``enroll-job``, ``jobs``, ``job``, ``resume``,
``reindex``, ``purge`` and ``migrate-model``.

With ``FACEID_BROKER_URL`` set, jobs go to the workers; without, they run in this process
(the progress bar then follows a background thread)."""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path

import typer

from ..errors import ConfigurationError
from ..store import JobRecord
from .app import app, console, err_console, progress_bar
from .remote import ApiKeyOpt, ServerOpt, remote
from .remote_enroll import follow
from .views import job_of, show_job, show_jobs

CollectionOpt = typer.Option("default", "--collection", "-c", help="collection name")
JsonOpt = typer.Option(False, "--json", help="print JSON")
WaitOpt = typer.Option(True, "--wait/--no-wait", help="follow the job until it finishes")
BatchOpt = typer.Option(32, "--batch-size", help="images per task (embedded as one batch)")


@app.command("worker")
def worker_command(
    device: str = typer.Option("cpu", help="cpu or cuda:N: where this worker runs its models"),
    queues: str = typer.Option(None, help="comma-separated (default: cpu,admin; gpu on CUDA)"),
    concurrency: int = typer.Option(1, help="task processes (each loads the models once)"),
    pool: str = typer.Option("prefork", help="prefork or solo"),
    loglevel: str = typer.Option("info", help="Celery log level"),
    name: str = typer.Option(None, help="worker node name (default faceid-DEVICE-PID@host)"),
) -> None:
    """Run a Celery worker for enrollment batches and admin jobs."""
    if not re.fullmatch(r"cpu|cuda(:\d+)?", device):
        raise typer.BadParameter("device must be cpu, cuda or cuda:N")
    if not os.environ.get("FACEID_BROKER_URL"):
        from ..config import JobSettings

        if not JobSettings().broker_url:
            raise ConfigurationError(
                "no broker configured: set FACEID_BROKER_URL (e.g. redis://127.0.0.1:6379/0); "
                "without one, jobs run in the process that submits them and need no worker"
            )
    os.environ["FACEID_DEVICE"] = device  # read by each pool process's settings
    from workers.app import app as celery_app

    queues = queues or ("gpu" if device.startswith("cuda") else "cpu,admin")
    node = name or f"faceid-{device.replace(':', '')}-{os.getpid()}@%h"
    argv = ["worker", "-Q", queues, "-c", str(concurrency), "-P", pool, "-l", loglevel]
    argv += ["--without-mingle", "--without-gossip"]  # nothing to sync between workers
    celery_app.worker_main([*argv, "-n", node])


def _follow(job_id: str, send: Callable[[], object] | None, json_out: bool) -> JobRecord:
    """Poll the job until it finishes, with a progress bar unless ``json_out``; ``send``
    (in-process runs) runs meanwhile in a thread."""
    from ..config import Settings
    from ..jobs import wait_for_job

    problem: list[BaseException] = []
    thread = None
    if send is not None:
        run = send

        def guarded() -> None:
            try:
                run()
            except BaseException as exc:
                problem.append(exc)

        thread = threading.Thread(target=guarded, daemon=True)
        thread.start()
    started = time.monotonic()
    hinted = False
    with progress_bar(console, elapsed=True) as bar:
        task = bar.add_task(f"job {job_id[:12]}", total=None, visible=not json_out)

        def update(job: JobRecord) -> None:
            nonlocal hinted
            if problem:
                raise problem[0]
            if job.status == "queued" and not hinted and time.monotonic() - started > 15:
                hinted = True
                err_console.print(
                    "still queued: is a worker running? start one with `faceid worker` "
                    "(same FACEID_BROKER_URL and FACEID_DATABASE_URL)"
                )
            total = job.counts.get("images") or job.counts.get("batches") or 1
            done = job.counts.get("done", job.progress * total)
            bar.update(task, total=total, completed=done, description=f"job {job.status}")

        job = wait_for_job(Settings(), job_id, poll=0.3, on_update=update)
    if thread is not None:
        thread.join()
    if problem:
        raise problem[0]
    return job


def _report(job: JobRecord, json_out: bool) -> None:
    show_job(job_of(job), json_out)


def _submit(create: Callable[[object], JobRecord], wait: bool, json_out: bool) -> None:
    """Create a job on a short-lived service, send its tasks, and follow it if asked."""
    from ..config import Settings
    from ..jobs import dispatch_job, open_service

    settings = Settings()
    if settings.jobs.eager:
        # In-process: the tasks run in a thread on this service while the bar follows them.
        with open_service(settings) as service:
            job = create(service)
            _report(_follow(job.id, lambda: dispatch_job(service, job.id), json_out), json_out)
        return
    with open_service(settings) as service:
        job = create(service)
        dispatch_job(service, job.id)
    if not wait:
        console.print(job.id)
        return
    _report(_follow(job.id, None, json_out), json_out)


@app.command("enroll-job")
def enroll_job_command(
    folder: Path = typer.Argument(..., help="DIR/<person>/*.jpg (a path every worker sees)"),
    collection: str = CollectionOpt,
    model: str = typer.Option(None, help="embedder for a new collection"),
    batch_size: int = BatchOpt,
    limit: int = typer.Option(None, help="enroll at most this many images"),
    wait: bool = WaitOpt,
    json_out: bool = JsonOpt,
) -> None:
    """Enroll a folder as a job of batches on the workers; re-running adds nothing twice."""
    enroll_as_job(folder, collection, model, batch_size, limit, wait, json_out)


def enroll_as_job(
    folder: Path,
    collection: str,
    model: str | None = None,
    batch_size: int = 32,
    limit: int | None = None,
    wait: bool = True,
    json_out: bool = False,
) -> None:
    """``enroll-job``'s work, callable from other verbs (e.g. ``enroll --job``)."""
    from ..jobs import create_enroll_job

    _submit(
        lambda svc: create_enroll_job(
            svc, collection, folder, batch_size=batch_size, limit=limit, model=model
        ),
        wait,
        json_out,
    )


@app.command("reindex")
def reindex_command(
    collection: str,
    wait: bool = WaitOpt,
    json_out: bool = JsonOpt,
    server: str = ServerOpt,
    api_key: str = ApiKeyOpt,
) -> None:
    """Rebuild COLLECTION's index from the database on a worker and write a snapshot (query
    nodes sharing the snapshot folder load it when they start)."""
    if server:
        with remote(server, api_key) as client:
            follow(client.reindex(collection), wait, json_out)
        return
    from ..jobs.admin import create_reindex_job

    _submit(lambda svc: create_reindex_job(svc, collection), wait, json_out)


@app.command("purge")
def purge_command(collection: str, wait: bool = WaitOpt, json_out: bool = JsonOpt) -> None:
    """Delete COLLECTION's tombstoned identities for good."""
    from ..jobs.admin import create_purge_job

    _submit(lambda svc: create_purge_job(svc, collection), wait, json_out)


@app.command("migrate-model")
def migrate_model_command(
    collection: str,
    model: str = typer.Option(..., "--model", help="the embedder to move to"),
    source: Path = typer.Option(..., "--from", help="the DIR/<person>/*.jpg it was enrolled from"),
    batch_size: int = BatchOpt,
    allow_missing: bool = typer.Option(False, help="switch even if some photos are not found"),
    wait: bool = WaitOpt,
    json_out: bool = JsonOpt,
) -> None:
    """Re-embed COLLECTION with another model into a new version, then switch to it at once."""
    from ..jobs.admin import create_migration_job

    _submit(
        lambda svc: create_migration_job(
            svc, collection, model, source, batch_size=batch_size, allow_missing=allow_missing
        ),
        wait,
        json_out,
    )


@app.command("jobs")
def jobs_command(
    status: str = typer.Option(None, help="only jobs in this status"),
    kind: str = typer.Option(None, help="only jobs of this kind"),
    limit: int = typer.Option(20, help="newest first"),
    json_out: bool = JsonOpt,
    server: str = ServerOpt,
    api_key: str = ApiKeyOpt,
) -> None:
    """List jobs, newest first."""
    if server:
        with remote(server, api_key) as client:
            # The API filters by status only; over-fetch when a kind is asked for.
            found = client.jobs(limit=limit if kind is None else 500, status=status)
        jobs = [j for j in found if kind is None or j.kind == kind][:limit]
    else:
        from ..config import Settings
        from ..jobs import list_jobs

        jobs = [job_of(j) for j in list_jobs(Settings(), kind, status, limit)]
    show_jobs(jobs, json_out)


@app.command("job")
def job_command(
    job_id: str, json_out: bool = JsonOpt, server: str = ServerOpt, api_key: str = ApiKeyOpt
) -> None:
    """Show one job: status, counts and per-image errors."""
    if server:
        with remote(server, api_key) as client:
            show_job(client.job(job_id), json_out)
        return
    from ..config import Settings
    from ..jobs import get_job

    _report(get_job(Settings(), job_id), json_out)


@app.command("resume")
def resume_command(job_id: str) -> None:
    """Send a job's unfinished tasks again (workers also do this for stalled jobs)."""
    from ..config import Settings
    from ..jobs import dispatch_job

    sent = dispatch_job(Settings(), job_id)
    err_console.print(f"sent {sent} task(s) of job {job_id}")
