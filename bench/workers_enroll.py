"""Enrollment throughput: Celery worker processes vs the in-process folder import.

The first N shared LFW images (DIR/<person>/*.jpg order) are enrolled three times into fresh
collections of one fresh Postgres database:

* in-process: ``import_folder`` in this process (one process, models already loaded);
* 1 worker: ``submit_enroll_folder`` (batches of 32) to one ``faceid worker`` process;
* 2 workers: the same with two worker processes (concurrency 1 each).

Worker times run from the submission (which hashes the images, as ``import_folder`` does) to
the job row saying succeeded; workers are started and have loaded their models before. Redis
db 14 is flushed first. Default detector and embedder (dlib HOG + YuNet, dlib ResNet).

    .venv/bin/python bench/workers_enroll.py [--images 400] [--batch-size 32]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from identity_service import FaceService
from identity_service.config import JobSettings, Settings
from identity_service.jobs import submit_enroll_folder, wait_for_job
from identity_service.service import import_folder, list_folder
from identity_service.store import upgrade

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SERVER = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"


@contextmanager
def fresh_database(server_url: str) -> Iterator[str]:
    server = make_url(server_url)
    name = f"faceid_bench_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        url = server.set(database=name).render_as_string(hide_password=False)
        upgrade(url)
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _proc_cpu(pid: int) -> tuple[int, float]:
    """(parent pid, user+system CPU seconds) of a live process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu(roots: list[int]) -> float:
    """CPU seconds used so far by the given processes and their children (pool processes)."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid, cpu = _proc_cpu(int(entry.name))
        except (OSError, IndexError, ValueError):
            continue
        if int(entry.name) in roots or ppid in roots:
            total += cpu
    return total


@contextmanager
def workers(n: int, env: dict[str, str], logs: Path) -> Iterator[list[int]]:
    """n worker processes, each started and with its models loaded ("ready" follows the pool
    processes' model loading)."""
    procs: list[tuple[subprocess.Popen[bytes], Path]] = []
    try:
        for i in range(n):
            log = logs / f"worker-{n}-{i}.log"
            cmd = [sys.executable, "-m", "identity_service", "worker", "--name", f"b{n}-{i}@%h"]
            with log.open("wb") as out:
                proc = subprocess.Popen(
                    cmd,
                    cwd=REPO,
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            procs.append((proc, log))
        for proc, log in procs:
            deadline = time.monotonic() + 120
            while " ready." not in log.read_text(errors="replace"):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"worker did not start:\n{log.read_text()[-3000:]}")
                time.sleep(0.3)
        yield [proc.pid for proc, _ in procs]
    finally:
        for proc, _ in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc, _ in procs:
            proc.wait(30)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--images", type=int, default=400)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--server", default=os.environ.get("FACEID_TEST_POSTGRES_URL", DEFAULT_SERVER))
    ap.add_argument("--broker", default="redis://127.0.0.1:6379/14")
    ap.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "workers_enroll.json"
    )
    args = ap.parse_args()
    lfw = Settings().lfw_dir / "images"
    load_before = os.getloadavg()
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp, fresh_database(args.server) as url:
        root = Path(tmp) / "photos"
        for person, image in list_folder(lfw, args.images):
            (root / person).mkdir(parents=True, exist_ok=True)
            (root / person / image.name).symlink_to(image)
        redis.Redis.from_url(args.broker).flushdb()
        settings = Settings(
            database_url=url,
            data_dir=Path(tmp) / "data",
            workers=1,
            jobs=JobSettings(broker_url=args.broker),
        )
        env = {
            **os.environ,
            "FACEID_DATABASE_URL": url,
            "FACEID_BROKER_URL": args.broker,
            "FACEID_DATA_DIR": str(Path(tmp) / "data"),
            "FACEID_WORKERS": "1",
        }

        with FaceService.embedded(settings) as service:
            coll = service.create_collection("inprocess")
            service.pipeline()  # models loaded before the clock starts
            cpu = time.process_time()
            report = import_folder(service, coll, root, chunk=args.batch_size)
            cpu = time.process_time() - cpu
        results["in_process"] = {
            "faces": report.faces_added,
            "seconds": report.seconds,
            "cpu_seconds": cpu,
        }
        print(f"in-process: {report.faces_added} faces in {report.seconds:.1f} s")

        for n in (1, 2):
            with workers(n, env, Path(tmp)) as pids:
                cpu_workers, cpu_self = tree_cpu(pids), time.process_time()
                start = time.perf_counter()
                job_id = submit_enroll_folder(settings, f"workers{n}", root, args.batch_size)
                job = wait_for_job(settings, job_id, timeout=1800, poll=0.2)
                seconds = time.perf_counter() - start
                # Submission (hashing) and polling here, batches in the workers.
                cpu = tree_cpu(pids) - cpu_workers + time.process_time() - cpu_self
            assert job.status == "succeeded", job
            results[f"workers_{n}"] = {
                "faces": job.counts["faces_added"],
                "seconds": seconds,
                "cpu_seconds": cpu,
            }
            print(f"{n} worker(s): {job.counts['faces_added']} faces in {seconds:.1f} s")
        redis.Redis.from_url(args.broker).flushdb()

    base = results["in_process"]["faces"] / results["in_process"]["seconds"]
    base_cpu = results["in_process"]["faces"] / results["in_process"]["cpu_seconds"]
    for r in results.values():
        r["faces_per_s"] = round(r["faces"] / r["seconds"], 2)
        r["vs_in_process"] = round(r["faces_per_s"] / base, 3)
        # Load-independent: CPU spent per face, so the worker path's overhead shows even when
        # other jobs on the machine take the cores.
        r["faces_per_cpu_s"] = round(r["faces"] / r["cpu_seconds"], 2)
        r["cpu_vs_in_process"] = round(r["faces_per_cpu_s"] / base_cpu, 3)
        r["seconds"] = round(r["seconds"], 2)
        r["cpu_seconds"] = round(r["cpu_seconds"], 2)
    out = {
        "images": args.images,
        "batch_size": args.batch_size,
        "results": results,
        "machine": {
            "cpus": os.cpu_count(),
            "loadavg_1m_before": round(load_before[0], 2),
            "loadavg_1m_after": round(os.getloadavg()[0], 2),
            "python": platform.python_version(),
            "note": "2-core machine shared with other engineers' jobs while this ran; "
            "wall-clock figures (and the 2-worker speed-up) are bounded by the cores left to "
            "this run; faces per CPU-second is not",
        },
    }
    for name, r in results.items():
        print(
            f"{name:>11}: {r['faces_per_s']:6.2f} faces/s ({r['vs_in_process']:.2f}x in-process), "
            f"{r['faces_per_cpu_s']:6.2f} faces per CPU-s ({r['cpu_vs_in_process']:.2f}x)"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
