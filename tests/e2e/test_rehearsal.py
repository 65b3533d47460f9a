"""Production rehearsal without Docker: the commands of deploy/Procfile.rehearsal (the same the
containers of deploy/compose.yaml and deploy/k8s run) against a fresh Postgres database and
Redis, driven through FaceIDClient.

Migrations, two query nodes, two workers; an API key from the CLI; ~110 LFW photos enrolled as
a job; find and verify on both nodes; a reindex while finds go on; a delete seen by both
nodes; a restart of everything (same answers); pg_dump + snapshot copy restored into a new
database under a third node (same answers). Every process is killed at the end.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from identity_service.client import FaceIDClient
from identity_service.errors import UnknownIdentityError

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
PROCFILE = REPO / "deploy" / "Procfile.rehearsal"
REDIS_URL = os.environ.get("FACEID_TEST_REHEARSAL_REDIS_URL", "redis://127.0.0.1:6379/13")
FACEID = str(Path(sys.executable).with_name("faceid"))
# 16 people with 8 LFW photos each: photos 1-7 enrolled (112), photo 8 is the probe.
PEOPLE = (
    "Ana_Palacio",
    "Antonio_Palocci",
    "Bob_Hope",
    "Celine_Dion",
    "Fernando_Henrique_Cardoso",
    "Gerry_Adams",
    "Jelena_Dokic",
    "John_Edwards",
    "Jonathan_Edwards",
    "Juan_Pablo_Montoya",
    "Kevin_Costner",
    "Li_Zhaoxing",
    "Mohamed_ElBaradei",
    "Naji_Sabri",
    "Richard_Virenque",
    "Sheryl_Crow",
)
ENROLLED_PER_PERSON = 7
READY_TIMEOUT = 150.0


def procfile() -> dict[str, list[str]]:
    """name -> argv of each line of the Procfile, ${VARS} left for expansion at start."""
    procs = {}
    for line in PROCFILE.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, command = line.split(":", 1)
            procs[name.strip()] = shlex.split(command)
    return procs


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _expand(argv: list[str], env: dict[str, str]) -> list[str]:
    out = [re.sub(r"\$\{(\w+)\}", lambda m: env[m.group(1)], a) for a in argv]
    assert out[0] == "faceid", out
    if not Path(FACEID).is_file():
        pytest.fail(f"{FACEID} not found: pip install -e . into this interpreter's env")
    return [FACEID, *out[1:]]


class Cluster:
    """The Procfile's processes on one database, one broker and one data dir."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env = env
        self.logs = logs
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.spec = procfile()
        self.runs = 0

    def url(self, n: int) -> str:
        return f"http://127.0.0.1:{self.env[f'FACEID_REHEARSAL_PORT_{n}']}"

    def run_once(self, name: str) -> None:
        out = subprocess.run(
            _expand(self.spec[name], self.env),
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 0, f"{name} failed:\n{out.stdout}\n{out.stderr}"

    def start(self, names: list[str]) -> None:
        self.runs += 1
        for name in names:
            log = open(self.logs / f"{name}.{self.runs}.log", "wb")  # noqa: SIM115 - the process owns it
            self.procs[name] = subprocess.Popen(
                _expand(self.spec[name], self.env),
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_ready(self, urls: list[str]) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        pending = list(urls)
        while pending:
            url = pending[0]
            try:
                if httpx.get(f"{url}/readyz", timeout=10).status_code == 200:
                    pending.pop(0)
                    continue
            except httpx.TransportError:
                pass
            dead = [n for n, p in self.procs.items() if p.poll() is not None]
            if dead or time.monotonic() > deadline:
                pytest.fail(f"not ready: {pending}, exited: {dead}\n{self.tail()}")
            time.sleep(0.5)

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        self.procs.clear()

    def tail(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}"
            for p in sorted(self.logs.glob("*.log"))
        )


def _libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture
def restored_db(postgres_url: str) -> Iterator[str]:
    """An empty second database on the same server, dropped afterwards."""
    server = make_url(postgres_url)
    name = f"faceid_restore_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        yield server.set(database=name).render_as_string(hide_password=False)
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


def _answers(client: FaceIDClient, probes: dict[str, Path]) -> dict[str, tuple[str, float]]:
    out = {}
    for person, probe in probes.items():
        top = client.find("lfw", probe, k=3)[0]
        out[person] = (top.external_id if top.accepted else "", round(top.similarity, 4))
    return out


def test_production_rehearsal(
    postgres_url: str, restored_db: str, lfw_dir: Path, tmp_path: Path
) -> None:
    broker = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        broker.flushdb()
    except redis.exceptions.ConnectionError:
        pytest.fail(f"Redis at {REDIS_URL} is unreachable", pytrace=False)
    images = lfw_dir / "images"
    photos = tmp_path / "photos"
    probes = {}
    for person in PEOPLE:
        (photos / person).mkdir(parents=True)
        for n in range(1, ENROLLED_PER_PERSON + 1):
            name = f"{person}_{n:04d}.jpg"
            (photos / person / name).symlink_to(images / person / name)
        probes[person] = images / person / f"{person}_{ENROLLED_PER_PERSON + 1:04d}.jpg"
    logs = tmp_path / "logs"
    logs.mkdir()
    env = {
        **os.environ,
        "FACEID_DATABASE_URL": postgres_url,
        "FACEID_BROKER_URL": REDIS_URL,
        "FACEID_DATA_DIR": str(tmp_path / "data"),  # shared, as the snapshots volume
        "FACEID_EMBEDDER": "dlib-resnet-v1",
        "FACEID_WORKERS": "1",
        "FACEID_API_ALLOW_SERVER_PATHS": "true",
        "FACEID_API_SERVER_PATH_ROOTS": json.dumps([str(tmp_path)]),
        "FACEID_API_METRICS_PER_COLLECTION": "true",  # the operator's opt-in, read below
        "FACEID_REHEARSAL_PORT_1": str(_free_port()),
        "FACEID_REHEARSAL_PORT_2": str(_free_port()),
    }
    for var in ("FACEID_API_AUTH", "FACEID_INDEX_KIND", "FACEID_EMBED_QUEUE"):
        env.pop(var, None)
    nodes = ["api1", "api2", "worker1", "worker2"]
    cluster = Cluster(env, logs)
    restored: Cluster | None = None
    clients: list[FaceIDClient] = []
    try:
        # 1. Migrations (the one-shot service), then the long-running processes.
        cluster.run_once("migrate")
        cluster.start(nodes)
        cluster.wait_ready([cluster.url(1), cluster.url(2)])

        # 2. An API key from the CLI, as an operator makes one.
        out = subprocess.run(
            [FACEID, "keys", "create", "-t", "acme", "--scopes", "admin,enroll,query", "--json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr
        key = json.loads(out.stdout)["token"]
        a, b = (FaceIDClient(cluster.url(n), api_key=key, timeout=60) for n in (1, 2))
        clients += [a, b]

        # 3. Enrollment as a job through node 1, carried out by both workers.
        a.create_collection("lfw")
        job = a.enroll_job("lfw", str(photos), batch_size=8).wait(timeout=150)
        total = len(PEOPLE) * ENROLLED_PER_PERSON
        assert job.status == "succeeded", job
        assert job.counts["faces_added"] >= total - 2, job.counts
        assert b.identities("lfw").total == len(PEOPLE)
        for worker in ("worker1", "worker2"):  # the batches were shared out
            assert "enroll_part" in (logs / f"{worker}.1.log").read_text(errors="replace")

        # 4. Find and verify on both nodes (each holds its own index).
        for i, (person, probe) in enumerate(probes.items()):
            client = (a, b)[i % 2]
            top = client.find("lfw", probe, k=3)[0]
            assert top.external_id == person and top.accepted, (person, top)
        assert a.verify(probes["Bob_Hope"], collection="lfw", identity="Bob_Hope").verified
        assert b.verify(probes["Celine_Dion"], collection="lfw", identity="Celine_Dion").verified
        assert not b.verify(probes["Bob_Hope"], probes["Celine_Dion"]).verified

        # 5. Reindex (an admin job on a worker) while finds continue on both nodes.
        reindex = b.reindex("lfw")
        finds = 0
        while not reindex.refresh().done:
            for i, (person, probe) in enumerate(list(probes.items())[:4]):
                top = (a, b)[(finds + i) % 2].find("lfw", probe, k=1)[0]
                assert top.external_id == person, (person, top)
            finds += 4
        assert reindex.status == "succeeded", reindex
        assert reindex.counts["faces"] == job.counts["faces_added"], reindex.counts
        assert finds > 0

        # 6. Delete an identity through node 1: gone from both nodes.
        gone = PEOPLE[0]
        deleted = a.delete_identity("lfw", gone)
        assert deleted >= ENROLLED_PER_PERSON - 1
        for client in (a, b):
            with pytest.raises(UnknownIdentityError):
                client.identity("lfw", gone)
            assert gone not in [m.external_id for m in client.find("lfw", probes[gone], k=5)]
        expected = _answers(a, probes)
        assert _answers(b, probes) == expected
        assert expected[gone][0] != gone
        assert all(expected[p][0] == p for p in PEOPLE[1:]), expected

        # 7. Restart everything: the data and the index come back, with the same answers.
        for client in clients:
            client.close()
        clients.clear()
        cluster.stop()
        assert list((tmp_path / "data").rglob("*")), "no snapshot written to the data dir"
        cluster.run_once("migrate")  # idempotent, as the one-shot service on every deploy
        cluster.start(nodes)
        cluster.wait_ready([cluster.url(1), cluster.url(2)])
        a, b = (FaceIDClient(cluster.url(n), api_key=key, timeout=60) for n in (1, 2))
        clients += [a, b]
        assert a.identities("lfw").total == len(PEOPLE) - 1
        faces = job.counts["faces_added"] - deleted
        for n in (1, 2):
            assert _index_sizes(cluster.url(n)) == [faces]
        assert _answers(a, probes) == expected
        assert _answers(b, probes) == expected

        # 8. Backup (pg_dump + the snapshot folder) restored into a new database under a
        # third node: same answers.
        dump = tmp_path / "faceid.dump"
        subprocess.run(
            ["pg_dump", "-Fc", "-f", str(dump), _libpq(postgres_url)],
            check=True,
            timeout=120,
        )
        subprocess.run(
            ["pg_restore", "--no-owner", "-d", _libpq(restored_db), str(dump)],
            check=True,
            timeout=120,
        )
        shutil.copytree(tmp_path / "data", tmp_path / "restored-data")
        restored_env = {
            **env,
            "FACEID_DATABASE_URL": restored_db,
            "FACEID_DATA_DIR": str(tmp_path / "restored-data"),
            "FACEID_REHEARSAL_PORT_1": str(_free_port()),
        }
        restored = Cluster(restored_env, logs)
        restored.runs = 100  # distinct log names
        restored.run_once("migrate")
        restored.start(["api1"])
        restored.wait_ready([restored.url(1)])
        c = FaceIDClient(restored.url(1), api_key=key, timeout=60)
        clients.append(c)
        assert c.identities("lfw").total == len(PEOPLE) - 1
        assert _index_sizes(restored.url(1)) == [faces]
        assert _answers(c, probes) == expected
        crashed = [p.name for p in logs.glob("*.log") if "Traceback" in p.read_text("latin-1")]
        assert not crashed, cluster.tail()
    except BaseException:
        print(cluster.tail())
        raise
    finally:
        for client in clients:
            client.close()
        cluster.stop()
        if restored is not None:
            restored.stop()
        broker.flushdb()


def _index_sizes(url: str) -> list[int]:
    """The faces in each collection's loaded index, from /metrics (per collection: opted in)."""
    text = httpx.get(f"{url}/metrics", timeout=30).text
    found = re.findall(r'^faceid_index_size\{collection_id="(\d+)"\} ([0-9.e+]+)$', text, re.M)
    return [int(float(value)) for _, value in found]
