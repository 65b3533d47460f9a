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
import signal
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from fault_plant import (
    COLLECTION,
    FACEID,
    OUTAGE_SECONDS,
    PG_CTL,
    REDIS_URL,
    START_REDIS,
    Plant,
    Tally,
    World,
    check_alive,
    count_images,
    faces_per_image,
    people_tree,
    redis_up,
    settle,
    start_postgres,
    start_redis,
    statuses,
    submit,
    top_answers,
    wait_batches,
)
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL

from identity_service.client import FaceIDClient
from identity_service.errors import FaceIDError, UnknownIdentityError

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def world(postgres_server: URL, lfw_dir: Path, tmp_path_factory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("faults")
    if not redis_up():
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
    photos, probes = people_tree(lfw_dir, tmp, 0, 8)
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
        start_redis()
        start_postgres(database)
        redis.Redis.from_url(REDIS_URL).flushdb()
        admin.dispose()  # its pooled connection did not survive the Postgres restart
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_worker_killed_mid_batch(world: World, lfw_dir: Path) -> None:
    job = submit(world, world.photos)
    wait_batches(world, job, 1)
    world.plant.kill("w1")
    world.plant.start_worker("w2")
    settle(world, job, count_images(world.photos))
    check_alive(world)
    world.tally.faults.append("worker kill -9 mid-batch")


def test_redis_restart_loses_the_queue(world: World, lfw_dir: Path) -> None:
    folder, probes = people_tree(lfw_dir, world.photos.parent, 8, 6)
    world.probes.update(probes)
    job = submit(world, folder)
    wait_batches(world, job, 1)
    try:
        # Without persistence the restarted Redis has lost every queued message.
        subprocess.run(["redis-cli", "-u", REDIS_URL, "shutdown", "nosave"], check=False)
        time.sleep(1.0)
    finally:
        start_redis()
    settle(world, job, count_images(folder))
    check_alive(world)
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
    folder, probes = people_tree(lfw_dir, world.photos.parent, 14, 6)
    stop = threading.Event()
    answers: list[tuple[str, str]] = []
    threads = [threading.Thread(target=_find_loop, args=(world, stop, answers)) for _ in range(2)]
    before = statuses(world)
    for t in threads:
        t.start()
    try:
        subprocess.run([*PG_CTL, "restart", "-m", "fast"], check=True, capture_output=True)
        start_postgres(world.database)
        time.sleep(3)
        job = submit(world, folder)
        wait_batches(world, job, 1)
        subprocess.run([*PG_CTL, "stop", "-m", "fast"], check=True, capture_output=True)
        time.sleep(OUTAGE_SECONDS)
    finally:
        start_postgres(world.database)
    time.sleep(8)
    stop.set()
    for t in threads:
        t.join(120)
    settle(world, job, count_images(folder))
    check_alive(world)
    world.tally.answered = statuses(world) - before
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


def test_corrupt_snapshot_under_a_restarted_api_node(world: World) -> None:
    reindex = world.client.reindex(COLLECTION).wait(timeout=120)
    assert reindex.status == "succeeded", reindex
    before = top_answers(world)
    snapshots = [p for p in (world.plant.root / "data").rglob("*") if p.is_file()]
    assert snapshots, "the reindex wrote no snapshot"
    world.plant.kill("api", signal.SIGTERM)
    for path in snapshots:
        data = bytearray(path.read_bytes())
        data[len(data) // 2 : len(data) // 2 + 64] = os.urandom(64)
        path.write_bytes(bytes(data))
    world.plant.start_api()
    assert top_answers(world) == before
    check_alive(world)
    world.tally.faults.append("corrupt snapshot")


def test_delete_then_restart_everything(world: World) -> None:
    gone = next(iter(world.probes))
    deleted = world.client.delete_identity(COLLECTION, gone)
    assert deleted >= 1
    world.expected_images -= deleted
    expected = top_answers(world)
    assert expected[gone][0] != gone
    world.plant.stop()
    world.plant.start_api()
    world.plant.start_worker("w3")
    with pytest.raises(UnknownIdentityError):
        world.client.identity(COLLECTION, gone)
    assert top_answers(world) == expected
    assert len(faces_per_image(world.database)) == world.expected_images
    check_alive(world)
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
