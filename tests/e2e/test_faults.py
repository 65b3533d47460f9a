"""The fault suite: an API node, Celery workers, Postgres and Redis as real processes, and
clients that retry as FaceIDClient does, through the faults an operator meets.

1. kill -9 of a worker in the middle of an enrollment job;
2. a Redis restart that loses every queued message, in the middle of a job;
3. a Postgres restart, then a 30 s Postgres outage, while clients find and a job enrolls;
4. a corrupt index snapshot under a restarted API node;
5. a delete, then a restart of every process.

After each fault it counts: faces per enrolled image (exactly one), jobs (all succeeded), client
errors (only typed ones: 503s the client retried until it gave up) and unexpected process exits
(none). The tally is printed at the end (``pytest -s``); docs/operations.md quotes it.

The tests share one deployment and run in file order. Postgres and Redis are stopped and started
with the commands in START_POSTGRES / START_REDIS and are always left running.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import redis
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import URL

from identity_service.client import FaceIDClient, Job
from identity_service.errors import FaceIDError, UnknownIdentityError
from identity_service.service import list_folder
from identity_service.store.models import Face, Identity

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REDIS_URL = os.environ.get("FACEID_TEST_FAULTS_REDIS_URL", "redis://127.0.0.1:6379/12")
START_REDIS = 'redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no'
PG_VERSION = os.environ.get("FACEID_TEST_PG_VERSION") or (
    sorted(os.listdir("/etc/postgresql"))[-1] if Path("/etc/postgresql").is_dir() else ""
)
PG_CTL = ["pg_ctlcluster", "--skip-systemctl-redirect", PG_VERSION, "main"]
START_POSTGRES = shlex.join([*PG_CTL, "start"])
OUTAGE_SECONDS = 30.0
FACEID = str(Path(sys.executable).with_name("faceid"))
COLLECTION = "people"


@dataclass
class Tally:
    faults: list[str] = field(default_factory=list)
    jobs: Counter[str] = field(default_factory=Counter)
    requests: int = 0
    answered: Counter[str] = field(default_factory=Counter)  # by HTTP status, from /metrics
    typed_errors: Counter[str] = field(default_factory=Counter)
    untyped_errors: list[str] = field(default_factory=list)
    unexpected_exits: list[str] = field(default_factory=list)
    images_enrolled: int = 0
    faces_lost: int = 0
    faces_duplicated: int = 0

    def report(self) -> str:
        return json.dumps(
            {
                "faults_survived": self.faults,
                "jobs": dict(self.jobs),
                "find_requests": self.requests,
                "server_answers_during_postgres_faults": dict(self.answered),
                "typed_client_errors": dict(self.typed_errors),
                "untyped_client_errors": len(self.untyped_errors),
                "unexpected_process_exits": self.unexpected_exits,
                "images_enrolled": self.images_enrolled,
                "faces_lost": self.faces_lost,
                "faces_duplicated": self.faces_duplicated,
            },
            indent=1,
        )


class Plant:
    """One API node and workers (``faceid serve`` / ``faceid worker``) on one database,
    broker and data dir."""

    def __init__(self, env: dict[str, str], root: Path) -> None:
        self.env = env
        self.root = root
        self.port = _free_port()
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.runs: Counter[str] = Counter()
        self.url = f"http://127.0.0.1:{self.port}"

    def _start(self, name: str, argv: list[str]) -> None:
        self.runs[name] += 1
        log = open(self.root / f"{name}.{self.runs[name]}.log", "wb")  # noqa: SIM115 - the process owns it
        self.procs[name] = subprocess.Popen(
            [FACEID, *argv],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def start_api(self) -> None:
        argv = ["serve", "--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning"]
        self._start("api", argv)
        deadline = time.monotonic() + 150
        while True:
            try:
                if httpx.get(f"{self.url}/readyz", timeout=10).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert self.procs["api"].poll() is None, f"the API exited:\n{self.tail()}"
            assert time.monotonic() < deadline, f"the API is not ready:\n{self.tail()}"
            time.sleep(0.3)

    def start_worker(self, name: str) -> None:
        argv = ["worker", "--device", "cpu", "--queues", "cpu,admin", "--concurrency", "1"]
        self._start(name, [*argv, "--name", f"{name}-{uuid.uuid4().hex[:6]}@%h"])
        log = self.root / f"{name}.{self.runs[name]}.log"
        deadline = time.monotonic() + 90
        while " ready." not in log.read_text(errors="replace"):
            assert self.procs[name].poll() is None, f"worker {name} exited:\n{self.tail()}"
            assert time.monotonic() < deadline, f"worker {name} is not ready:\n{self.tail()}"
            time.sleep(0.2)

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        proc = self.procs.pop(name)
        if proc.poll() is None:
            os.killpg(proc.pid, sig)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)

    def exited(self) -> list[str]:
        return [f"{n} (rc {p.returncode})" for n, p in self.procs.items() if p.poll() is not None]

    def stop(self) -> None:
        for name in list(self.procs):
            self.kill(name, signal.SIGTERM)

    def tail(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-2500:]}"
            for p in sorted(self.root.glob("*.log"))
        )


@dataclass
class World:
    plant: Plant
    client: FaceIDClient
    database: str
    photos: Path
    probes: dict[str, Path]
    tally: Tally
    api_key: str
    expected_images: int = 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _redis_up() -> bool:
    try:
        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping())
    except redis.exceptions.ConnectionError:
        return False


def _start_redis() -> None:
    subprocess.run(START_REDIS, shell=True, check=False, capture_output=True)
    deadline = time.monotonic() + 20
    while not _redis_up():
        assert time.monotonic() < deadline, f"Redis did not come back; start it: {START_REDIS}"
        time.sleep(0.2)


def _postgres_up(url: str) -> bool:
    engine = create_engine(url, connect_args={"connect_timeout": 2})
    try:
        with engine.connect():
            return True
    except Exception:
        return False
    finally:
        engine.dispose()


def _start_postgres(url: str) -> None:
    subprocess.run([*PG_CTL, "start"], check=False, capture_output=True)
    deadline = time.monotonic() + 60
    while not _postgres_up(url):
        assert time.monotonic() < deadline, (
            f"Postgres did not come back; start it: {START_POSTGRES}"
        )
        time.sleep(0.3)


def _people(lfw_dir: Path, tmp: Path, start: int, people: int) -> tuple[Path, dict[str, Path]]:
    """A DIR/<person>/*.jpg tree (symlinks) of ``people`` LFW people with 4+ photos from the
    ``start``-th such person on: three photos each enrolled, the fourth kept as a probe."""
    by_person: dict[str, list[Path]] = {}
    for person, image in list_folder(lfw_dir / "images"):
        by_person.setdefault(person, []).append(image)
    chosen = [p for p, images in sorted(by_person.items()) if len(images) >= 4][start:]
    root = tmp / f"photos-{start}"
    probes = {}
    for person in chosen[:people]:
        images = sorted(by_person[person])
        (root / person).mkdir(parents=True)
        for image in images[:3]:
            (root / person / image.name).symlink_to(image)
        probes[person] = images[3]
    return root, probes


@pytest.fixture(scope="module")
def world(postgres_server: URL, lfw_dir: Path, tmp_path_factory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("faults")
    if not _redis_up():
        pytest.fail(f"Redis at {REDIS_URL} is unreachable. Start it with:\n  {START_REDIS}")
    redis.Redis.from_url(REDIS_URL).flushdb()
    name = f"faceid_faults_{uuid.uuid4().hex[:12]}"
    admin = create_engine(postgres_server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    database = postgres_server.set(database=name).render_as_string(hide_password=False)
    env = {
        **os.environ,
        "FACEID_DATABASE_URL": database,
        "FACEID_BROKER_URL": REDIS_URL,
        "FACEID_DATA_DIR": str(tmp / "data"),
        "FACEID_EMBEDDER": "dlib-resnet-v1",
        "FACEID_WORKERS": "1",
        "FACEID_VISIBILITY_TIMEOUT": "60",
        "FACEID_JOB_STALL_SECONDS": "4",
        "FACEID_JOB_SWEEP_INTERVAL": "1",
        "FACEID_API_ALLOW_SERVER_PATHS": "true",
        "FACEID_API_SERVER_PATH_ROOTS": json.dumps([str(tmp)]),
    }
    for var in ("FACEID_API_AUTH", "FACEID_INDEX_KIND", "FACEID_EMBED_QUEUE"):
        env.pop(var, None)
    photos, probes = _people(lfw_dir, tmp, 0, 8)
    plant = Plant(env, tmp)
    client: FaceIDClient | None = None
    try:
        subprocess.run([FACEID, "db", "upgrade"], env=env, check=True, capture_output=True)
        keys = subprocess.run(
            [FACEID, "keys", "create", "-t", "acme", "--scopes", "admin,enroll,query", "--json"],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        plant.start_api()
        plant.start_worker("w1")
        api_key = json.loads(keys.stdout)["token"]
        client = FaceIDClient(plant.url, api_key=api_key, retries=6)
        client.create_collection(COLLECTION)
        yield World(plant, client, database, photos, probes, Tally(), api_key)
    except BaseException:
        print(plant.tail())
        raise
    finally:
        if client is not None:
            client.close()
        plant.stop()
        _start_redis()
        _start_postgres(database)
        redis.Redis.from_url(REDIS_URL).flushdb()
        admin.dispose()  # its pooled connection did not survive the Postgres restart
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _faces_per_image(database: str) -> Counter[tuple[str, str]]:
    engine = create_engine(database)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                select(Identity.external_id, Face.image_sha256).join(
                    Face, Face.identity_id == Identity.id
                )
            )
            return Counter((r[0], r[1]) for r in rows)
    finally:
        engine.dispose()


def _face_count(database: str) -> int:
    engine = create_engine(database)
    try:
        with engine.connect() as conn:
            return int(conn.scalar(select(func.count()).select_from(Face)) or 0)
    finally:
        engine.dispose()


def _submit(world: World, folder: Path) -> Job:
    return world.client.enroll_job(COLLECTION, str(folder), batch_size=2)


def _wait_batches(world: World, job: Job, done: int, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while job.refresh().counts.get("batches_done", 0) < done:
        assert not job.done, f"the job finished before the fault: {job}"
        assert time.monotonic() < deadline, f"fewer than {done} batches in {timeout} s: {job}"
        time.sleep(0.05)


def _settle(world: World, job: Job, images: int) -> None:
    """The job succeeded and every image of every job so far is enrolled exactly once."""
    job = job.wait(timeout=180)
    world.tally.jobs[job.status] += 1
    assert job.status == "succeeded", f"{job}\n{world.plant.tail()}"
    c = job.counts
    assert c["faces_added"] + c["failed"] == c["images"] == images, c
    world.expected_images += c["faces_added"]
    per_image = _faces_per_image(world.database)
    world.tally.faces_duplicated = sum(n - 1 for n in per_image.values() if n > 1)
    world.tally.faces_lost = max(0, world.expected_images - len(per_image))
    world.tally.images_enrolled = len(per_image)
    assert world.tally.faces_duplicated == 0, per_image.most_common(3)
    assert len(per_image) == world.expected_images == _face_count(world.database)


def _check_alive(world: World) -> None:
    exited = world.plant.exited()
    world.tally.unexpected_exits += exited
    assert not exited, world.plant.tail()


def _images(folder: Path) -> int:
    return sum(1 for _ in folder.rglob("*.jpg"))


def test_worker_killed_mid_batch(world: World, lfw_dir: Path) -> None:
    job = _submit(world, world.photos)
    _wait_batches(world, job, 1)
    world.plant.kill("w1")
    world.plant.start_worker("w2")
    _settle(world, job, _images(world.photos))
    _check_alive(world)
    world.tally.faults.append("worker kill -9 mid-batch")


def test_redis_restart_loses_the_queue(world: World, lfw_dir: Path) -> None:
    folder, probes = _people(lfw_dir, world.photos.parent, 8, 6)
    world.probes.update(probes)
    job = _submit(world, folder)
    _wait_batches(world, job, 1)
    try:
        # Without persistence the restarted Redis has lost every queued message.
        subprocess.run(["redis-cli", "-u", REDIS_URL, "shutdown", "nosave"], check=False)
        time.sleep(1.0)
    finally:
        _start_redis()
    _settle(world, job, _images(folder))
    _check_alive(world)
    world.tally.faults.append("Redis restart losing the queue")


def _find_loop(world: World, stop: threading.Event, answers: list[tuple[str, str]]) -> None:
    """Find every probe in turn until ``stop``, recording each outcome."""
    with FaceIDClient(world.plant.url, api_key=world.api_key, retries=6, backoff=0.5) as client:
        probes = list(world.probes.items())
        i = 0
        while not stop.is_set():
            person, probe = probes[i % len(probes)]
            i += 1
            world.tally.requests += 1
            try:
                top = client.find(COLLECTION, probe, k=1)
                answers.append((person, top[0].external_id if top and top[0].accepted else ""))
            except FaceIDError as exc:
                world.tally.typed_errors[getattr(exc, "code", type(exc).__name__)] += 1
            except Exception as exc:  # counted: the tally asserts there are none
                world.tally.untyped_errors.append(repr(exc))
            time.sleep(0.05)


def test_postgres_restart_and_outage_while_clients_find_and_a_job_enrolls(
    world: World, lfw_dir: Path
) -> None:
    folder, probes = _people(lfw_dir, world.photos.parent, 14, 6)
    stop = threading.Event()
    answers: list[tuple[str, str]] = []
    threads = [threading.Thread(target=_find_loop, args=(world, stop, answers)) for _ in range(2)]
    before = _statuses(world)
    for t in threads:
        t.start()
    try:
        subprocess.run([*PG_CTL, "restart", "-m", "fast"], check=True, capture_output=True)
        _start_postgres(world.database)
        time.sleep(3)
        job = _submit(world, folder)
        _wait_batches(world, job, 1)
        subprocess.run([*PG_CTL, "stop", "-m", "fast"], check=True, capture_output=True)
        time.sleep(OUTAGE_SECONDS)
    finally:
        _start_postgres(world.database)
    time.sleep(8)
    stop.set()
    for t in threads:
        t.join(120)
    _settle(world, job, _images(folder))
    _check_alive(world)
    world.tally.answered = _statuses(world) - before
    assert world.tally.answered["503"] > 0, f"the outage was never seen: {world.tally.answered}"
    assert not [s for s in world.tally.answered if s.startswith("5") and s != "503"]
    assert not world.tally.untyped_errors, world.tally.untyped_errors[:5]
    assert set(world.tally.typed_errors) <= {"service_unavailable"}, world.tally.typed_errors
    # the probes taken before the outage are still found after it
    wrong = [(p, got) for p, got in answers if got != p]
    assert len(wrong) <= len(answers) // 10, wrong
    after = world.client.find(COLLECTION, next(iter(world.probes.values())), k=1)
    assert after[0].accepted
    world.probes.update(probes)
    world.tally.faults += ["Postgres restart", f"Postgres outage {OUTAGE_SECONDS:.0f} s"]


def _statuses(world: World) -> Counter[str]:
    """Requests the API node answered since it started, by status (its /metrics)."""
    body = httpx.get(f"{world.plant.url}/metrics", timeout=30).text
    out: Counter[str] = Counter()
    counts = r'^faceid_http_request_duration_seconds_count\{.*status="(\d+)".*\} (\S+)$'
    for m in re.finditer(counts, body, re.M):
        out[m.group(1)] += int(float(m.group(2)))
    return out


def _answers(world: World) -> dict[str, tuple[str, float]]:
    out = {}
    for person, probe in world.probes.items():
        top = world.client.find(COLLECTION, probe, k=3)[0]
        out[person] = (top.external_id if top.accepted else "", round(top.similarity, 4))
    return out


def test_corrupt_snapshot_under_a_restarted_api_node(world: World) -> None:
    reindex = world.client.reindex(COLLECTION).wait(timeout=120)
    assert reindex.status == "succeeded", reindex
    before = _answers(world)
    snapshots = [p for p in (world.plant.root / "data").rglob("*") if p.is_file()]
    assert snapshots, "the reindex wrote no snapshot"
    world.plant.kill("api", signal.SIGTERM)
    for path in snapshots:
        data = bytearray(path.read_bytes())
        data[len(data) // 2 : len(data) // 2 + 64] = os.urandom(64)
        path.write_bytes(bytes(data))
    world.plant.start_api()
    assert _answers(world) == before
    _check_alive(world)
    world.tally.faults.append("corrupt snapshot")


def test_delete_then_restart_everything(world: World) -> None:
    gone = next(iter(world.probes))
    deleted = world.client.delete_identity(COLLECTION, gone)
    assert deleted >= 1
    world.expected_images -= deleted
    expected = _answers(world)
    assert expected[gone][0] != gone
    world.plant.stop()
    world.plant.start_api()
    world.plant.start_worker("w3")
    with pytest.raises(UnknownIdentityError):
        world.client.identity(COLLECTION, gone)
    assert _answers(world) == expected
    assert len(_faces_per_image(world.database)) == world.expected_images
    _check_alive(world)
    world.tally.faults.append("delete, then restart")


def test_tally(world: World) -> None:
    """Printed for the docs (pytest -s); fails if any fault above left a trace."""
    print("\nfault suite tally:\n" + world.tally.report())
    t = world.tally
    assert len(t.faults) == 6, t.faults
    assert t.jobs == Counter(succeeded=3)
    assert (t.faces_lost, t.faces_duplicated, t.untyped_errors, t.unexpected_exits) == (
        0,
        0,
        [],
        [],
    )
    tracebacks = [
        p.name for p in world.plant.root.glob("api.*.log") if "Traceback" in p.read_text()
    ]
    assert not tracebacks, world.plant.tail()
