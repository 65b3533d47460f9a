"""The deployment the fault suite runs: an API node and Celery workers as processes
(``faceid serve`` / ``faceid worker``) on one Postgres database, a Redis database and a data
dir, and the counts the suite keeps."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import redis
from sqlalchemy import create_engine, func, select

from identity_service.client import FaceIDClient, Job
from identity_service.service import list_folder
from identity_service.store.models import Face, Identity

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
        self.port = free_port()
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def redis_up() -> bool:
    try:
        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping())
    except redis.exceptions.ConnectionError:
        return False


def start_redis() -> None:
    subprocess.run(START_REDIS, shell=True, check=False, capture_output=True)
    deadline = time.monotonic() + 20
    while not redis_up():
        assert time.monotonic() < deadline, f"Redis did not come back; start it: {START_REDIS}"
        time.sleep(0.2)


def postgres_up(url: str) -> bool:
    engine = create_engine(url, connect_args={"connect_timeout": 2})
    try:
        with engine.connect():
            return True
    except Exception:
        return False
    finally:
        engine.dispose()


def start_postgres(url: str) -> None:
    subprocess.run([*PG_CTL, "start"], check=False, capture_output=True)
    deadline = time.monotonic() + 60
    while not postgres_up(url):
        assert time.monotonic() < deadline, (
            f"Postgres did not come back; start it: {START_POSTGRES}"
        )
        time.sleep(0.3)


def people_tree(lfw_dir: Path, tmp: Path, start: int, people: int) -> tuple[Path, dict[str, Path]]:
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


def faces_per_image(database: str) -> Counter[tuple[str, str]]:
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


def face_count(database: str) -> int:
    engine = create_engine(database)
    try:
        with engine.connect() as conn:
            return int(conn.scalar(select(func.count()).select_from(Face)) or 0)
    finally:
        engine.dispose()


def submit(world: World, folder: Path) -> Job:
    return world.client.enroll_job(COLLECTION, str(folder), batch_size=2)


def wait_batches(world: World, job: Job, done: int, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while job.refresh().counts.get("batches_done", 0) < done:
        assert not job.done, f"the job finished before the fault: {job}"
        assert time.monotonic() < deadline, f"fewer than {done} batches in {timeout} s: {job}"
        time.sleep(0.05)


def settle(world: World, job: Job, images: int) -> None:
    """The job succeeded and every image of every job so far is enrolled exactly once."""
    job = job.wait(timeout=180)
    world.tally.jobs[job.status] += 1
    assert job.status == "succeeded", f"{job}\n{world.plant.tail()}"
    c = job.counts
    assert c["faces_added"] + c["failed"] == c["images"] == images, c
    world.expected_images += c["faces_added"]
    per_image = faces_per_image(world.database)
    world.tally.faces_duplicated = sum(n - 1 for n in per_image.values() if n > 1)
    world.tally.faces_lost = max(0, world.expected_images - len(per_image))
    world.tally.images_enrolled = len(per_image)
    assert world.tally.faces_duplicated == 0, per_image.most_common(3)
    assert len(per_image) == world.expected_images == face_count(world.database)


def check_alive(world: World) -> None:
    exited = world.plant.exited()
    world.tally.unexpected_exits += exited
    assert not exited, world.plant.tail()


def count_images(folder: Path) -> int:
    return sum(1 for _ in folder.rglob("*.jpg"))


def statuses(world: World) -> Counter[str]:
    """Requests the API node answered since it started, by status (its /metrics)."""
    body = httpx.get(f"{world.plant.url}/metrics", timeout=30).text
    out: Counter[str] = Counter()
    counts = r'^faceid_http_request_duration_seconds_count\{.*status="(\d+)".*\} (\S+)$'
    for m in re.finditer(counts, body, re.M):
        out[m.group(1)] += int(float(m.group(2)))
    return out


def top_answers(world: World) -> dict[str, tuple[str, float]]:
    out = {}
    for person, probe in world.probes.items():
        top = world.client.find(COLLECTION, probe, k=3)[0]
        out[person] = (top.external_id if top.accepted else "", round(top.similarity, 4))
    return out
