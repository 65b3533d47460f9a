"""Celery workers as real processes on the real Redis and Postgres: a worker killed with
SIGKILL mid-job, Redis restarted mid-job, reindex and model migration while queries run.

Redis db 15 (FACEID_TEST_REDIS_URL) is flushed before each test. The broker-restart test shuts
the Redis server down and starts it again (``redis-server`` on PATH), and leaves it running.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from sqlalchemy import func, select

from identity_service import FaceService
from identity_service.config import JobSettings, Settings
from identity_service.jobs import (
    get_job,
    submit_enroll_folder,
    submit_migrate_model,
    submit_reindex,
    wait_for_job,
)
from identity_service.service import list_folder
from identity_service.store import upgrade
from identity_service.store.models import Face, Identity

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
REDIS_URL = os.environ.get("FACEID_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
REDIS_START = 'redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no'


def _redis_up() -> bool:
    try:
        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping())
    except redis.exceptions.ConnectionError:
        return False


@pytest.fixture
def broker() -> str:
    if not _redis_up():
        pytest.fail(
            f"Redis at {REDIS_URL} is unreachable. Start it with:\n  {REDIS_START}\n"
            "or point FACEID_TEST_REDIS_URL at another server (a database it may flush).",
            pytrace=False,
        )
    redis.Redis.from_url(REDIS_URL).flushdb()
    return REDIS_URL


@pytest.fixture
def cluster(broker: str, postgres_url: str, tmp_path: Path) -> Iterator[Cluster]:
    upgrade(postgres_url)
    c = Cluster(broker, postgres_url, tmp_path)
    try:
        yield c
    finally:
        c.close()


class Cluster:
    """Workers (subprocesses) and a client sharing one database, broker and data dir."""

    def __init__(self, broker: str, database: str, tmp: Path) -> None:
        self.tmp = tmp
        self.settings = Settings(
            database_url=database,
            data_dir=tmp / "data",
            workers=1,
            jobs=JobSettings(broker_url=broker),
        )
        self.env = {
            **os.environ,
            "FACEID_BROKER_URL": broker,
            "FACEID_DATABASE_URL": database,
            "FACEID_DATA_DIR": str(tmp / "data"),
            "FACEID_WORKERS": "1",
            "FACEID_VISIBILITY_TIMEOUT": "60",
            "FACEID_JOB_STALL_SECONDS": "4",
            "FACEID_JOB_SWEEP_INTERVAL": "1",
        }
        self.workers: dict[str, subprocess.Popen[bytes]] = {}

    def start_worker(self, name: str) -> None:
        log = open(self.tmp / f"worker-{name}.log", "wb")  # noqa: SIM115 - the process owns it
        cmd = [sys.executable, "-m", "identity_service", "worker", "--name", f"{name}@%h"]
        self.workers[name] = subprocess.Popen(
            cmd,
            cwd=REPO,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._wait_log(name, " ready.", 60)

    def _wait_log(self, name: str, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        path = self.tmp / f"worker-{name}.log"
        while time.monotonic() < deadline:
            if text in path.read_text(errors="replace"):
                return
            if self.workers[name].poll() is not None:
                break
            time.sleep(0.2)
        pytest.fail(f"worker {name} did not start:\n{self.log_tail(name)}", pytrace=False)

    def log_tail(self, name: str, lines: int = 40) -> str:
        text = (self.tmp / f"worker-{name}.log").read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def kill(self, name: str) -> None:
        """SIGKILL the worker and its pool processes (its own process group)."""
        proc = self.workers.pop(name)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)

    def close(self) -> None:
        for name in list(self.workers):
            proc = self.workers.pop(name)
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(10)

    def wait(self, job_id: str, timeout: float = 120.0):
        try:
            return wait_for_job(self.settings, job_id, timeout=timeout, poll=0.2)
        except TimeoutError:
            logs = "\n".join(f"--- {n}\n{self.log_tail(n)}" for n in self.workers)
            pytest.fail(f"job {job_id} did not finish: {get_job(self.settings, job_id)}\n{logs}")

    def wait_batches(self, job_id: str, done: int, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while get_job(self.settings, job_id).counts.get("batches_done", 0) < done:
            assert time.monotonic() < deadline, f"fewer than {done} batches done in {timeout} s"
            time.sleep(0.05)


def _folder(tmp: Path, lfw_dir: Path, n: int, skip: int = 0) -> Path:
    """DIR/<person>/*.jpg with n LFW images (symlinks), two or more photos for most people."""
    root = tmp / f"photos-{skip}-{n}"
    for person, image in list_folder(lfw_dir / "images", skip + n)[skip:]:
        (root / person).mkdir(parents=True, exist_ok=True)
        (root / person / image.name).symlink_to(image)
    return root


def _faces_per_image(service: FaceService, collection: str) -> Counter[tuple[str, str]]:
    coll = service.collection(collection)
    with service.engine.connect() as conn:
        rows = conn.execute(
            select(Identity.external_id, Face.image_sha256)
            .join(Face, Face.identity_id == Identity.id)
            .where(Face.collection_id == coll.id)
        )
        return Counter((r[0], r[1]) for r in rows)


def _assert_enrolled_once(cluster: Cluster, job_id: str, collection: str, images: int) -> None:
    job = get_job(cluster.settings, job_id)
    assert job.status == "succeeded", job
    with FaceService(cluster.settings) as service:
        per_image = _faces_per_image(service, collection)
        with service.engine.connect() as conn:
            total = conn.scalar(select(func.count()).select_from(Face))
    assert per_image and set(per_image.values()) == {1}, per_image.most_common(3)
    c = job.counts
    assert c["faces_added"] == len(per_image) == total
    assert c["faces_added"] + c["failed"] == c["images"] == images
    assert c["batches_done"] == c["batches"] and job.progress == 1.0


def test_worker_killed_mid_job_enrolls_every_image_once(cluster, lfw_dir, tmp_path):
    root = _folder(tmp_path, lfw_dir, 40)
    cluster.start_worker("a")
    cluster.start_worker("b")
    job_id = submit_enroll_folder(cluster.settings, "people", root, batch_size=4)
    cluster.wait_batches(job_id, 3)
    cluster.kill("a")
    assert get_job(cluster.settings, job_id).status == "running"
    cluster.start_worker("c")
    cluster.wait(job_id)
    _assert_enrolled_once(cluster, job_id, "people", 40)


def _start_redis() -> None:
    subprocess.run(REDIS_START, shell=True, check=False, capture_output=True)
    deadline = time.monotonic() + 20
    while not _redis_up():
        assert time.monotonic() < deadline, f"Redis did not come back; start it: {REDIS_START}"
        time.sleep(0.2)


def test_broker_restart_mid_job(cluster, lfw_dir, tmp_path):
    root = _folder(tmp_path, lfw_dir, 24, skip=40)
    cluster.start_worker("a")
    job_id = submit_enroll_folder(cluster.settings, "people", root, batch_size=4)
    cluster.wait_batches(job_id, 1)
    assert get_job(cluster.settings, job_id).status == "running"
    try:
        # Without persistence the restarted Redis has lost every queued message.
        subprocess.run(["redis-cli", "-u", REDIS_URL, "shutdown", "nosave"], check=False)
        time.sleep(1.0)
    finally:
        _start_redis()
    cluster.wait(job_id)
    _assert_enrolled_once(cluster, job_id, "people", 24)


def _ranked(service: FaceService, collection: str, probes) -> list[list[tuple[str, float]]]:
    return [
        [(m.external_id, round(m.similarity, 5)) for m in matches]
        for matches in service.find_batch(collection, probes, k=3)
    ]


def test_reindex_and_migration_while_queries_run(cluster, lfw_dir, tmp_path):
    root = _folder(tmp_path, lfw_dir, 16, skip=64)
    cluster.start_worker("a")
    cluster.wait(submit_enroll_folder(cluster.settings, "people", root, batch_size=8))
    node = FaceService(cluster.settings)  # a query node sharing the workers' snapshot folder
    people = sorted({p for p, _ in list_folder(root)})
    probes = [node.pipeline().represent(next((root / p).iterdir()))[0].embedding for p in people]
    before = _ranked(node, "people", probes)
    assert [r[0][0] for r in before] == people

    errors: list[BaseException] = []
    results: list[list[list[tuple[str, float]]]] = []
    stop = threading.Event()

    def query_loop() -> None:
        while not stop.is_set():
            try:
                results.append(_ranked(node, "people", probes))
            except BaseException as exc:
                errors.append(exc)
                return

    thread = threading.Thread(target=query_loop)
    thread.start()
    try:
        reindex = cluster.wait(submit_reindex(cluster.settings, "people"))
        node.rebuild_index("people")  # this node's own atomic swap, under load
        migration = cluster.wait(
            # The same model, re-embedded: every query must answer exactly as before.
            submit_migrate_model(
                cluster.settings, "people", node.collection("people").model, root, batch_size=8
            )
        )
        time.sleep(0.3)  # queries against the switched collection
    finally:
        stop.set()
        thread.join()
    assert not errors, errors[0]
    assert len(results) > 5 and all(r == before for r in results)

    assert reindex.status == "succeeded" and reindex.counts["faces"] == 16
    snapshot = Path(reindex.counts["snapshot"])
    assert snapshot.is_file() and snapshot.is_relative_to(tmp_path / "data" / "index")
    assert migration.status == "succeeded", migration
    names = {c.name: c.id for c in node.repo.list_collections()}
    retired = migration.counts["retired_as"]
    assert retired in names and names["people"] == migration.params["collection_id"]
    restarted = FaceService(cluster.settings)  # starts from the snapshots on disk
    assert _ranked(restarted, "people", probes) == before == _ranked(node, "people", probes)
    assert len(restarted.galleries.follower(restarted.collection("people"))) == 16
    restarted.close()
    node.close()


def test_job_counts_are_atomic_on_postgres(postgres_url):
    """Concurrent workers record batches on separate connections: no increment is lost, and
    a batch recorded twice (a redelivered message) counts once."""
    from identity_service.store import Repository, make_engine

    upgrade(postgres_url)
    engine = make_engine(postgres_url, pool_size=8)
    repo = Repository(engine)
    job = repo.create_job_with_parts("enroll", {}, [{"task": "t", "queue": "cpu"}] * 40)
    ids = [p.id for p in repo.job_parts(job.id)]
    completed: list[bool] = []

    def run(order: list[str]) -> None:
        for pid in order:
            completed.append(repo.complete_job_part(pid, {"faces_added": 3, "done": 4})[1])

    threads = [threading.Thread(target=run, args=(ids[i::2] + ids,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done = repo.get_job(job.id)
    engine.dispose()
    assert done.status == "succeeded" and completed.count(True) == 1
    assert (done.counts["faces_added"], done.counts["done"], done.counts["batches_done"]) == (
        120,
        160,
        40,
    )
