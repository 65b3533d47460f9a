"""Enrolled -> findable and deleted -> gone through FaceService on Postgres, on each vector
store, as index_freshness.py measures it for FAISS: a query node (its own process and
FaceService) calls ``find`` back to back; the writer commits a batch of 4 faces (or deletes the
person) through the repository; a trial lasts from the commit returning until the query node's
first ``find`` that sees it. On Milvus the query node itself applies the log to the shared
collection when it polls (it holds the applier lock meanwhile). Used by milvus_scale.py.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import random
import tempfile
import time
import uuid
from multiprocessing.connection import Connection
from pathlib import Path

import numpy as np
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

DIM = 128
POLL = 0.05
GALLERY = 2000


def _unit(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.normal(size=(n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _face(vec: np.ndarray, key: str, i: int):
    from identity_service.store import NewFace

    return NewFace(key, i, [0, 0, 1, 1], [[0, 0]] * 5, 1.0, None, vec, "dlib-resnet-v1@1")


def query_node(url: str, store: str, name: str, data_dir: str, conn: Connection) -> None:
    from identity_service import FaceService, Settings
    from identity_service.config import IndexSettings

    logging.getLogger("identity_service.index.sync").setLevel(logging.CRITICAL)
    index = IndexSettings(poll_interval=POLL, vector_store=store)
    service = FaceService(Settings(database_url=url, data_dir=Path(data_dir), index=index))
    coll = service.collection(name)
    service.find(coll, _unit(np.random.default_rng(0), 1)[0], k=1)  # start the follower
    conn.send("ready")
    while (msg := conn.recv()) is not None:
        mode, vector, who = msg
        conn.send("watching")
        while (service.find(coll, vector, k=1)[0].external_id == who) != (mode == "add"):
            pass
        conn.send(time.monotonic())
    service.close()


def _one_store(url: str, store: str, trials: int) -> dict[str, dict[str, float]]:
    from identity_service.store import Repository, make_engine

    repo = Repository(make_engine(url))
    name = f"fresh-{store.split(':')[0]}"
    coll = repo.create_collection(name, "dlib-resnet-v1", "1", DIM, threshold=0.5)
    rng = np.random.default_rng(1)
    for i, vec in enumerate(_unit(rng, GALLERY)):
        ident = repo.upsert_identity(coll.id, f"seed-{i}")
        repo.add_faces(coll.id, ident.id, [_face(vec, f"seed-{name}-{i}", 0)])
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    times: dict[str, list[float]] = {"add": [], "remove": []}
    with tempfile.TemporaryDirectory() as data_dir:
        node = ctx.Process(target=query_node, args=(url, store, name, data_dir, child))
        node.start()
        assert parent.recv() == "ready"
        for trial in range(trials):
            who, vectors = f"new-{trial}", _unit(rng, 4)
            for mode in ("add", "remove"):
                parent.send((mode, vectors[0], who))
                assert parent.recv() == "watching"
                time.sleep(random.uniform(0.0, POLL))  # any phase of the node's poll cycle
                if mode == "add":
                    ident = repo.upsert_identity(coll.id, who)
                    faces = [_face(v, f"{name}-{who}", j) for j, v in enumerate(vectors)]
                    repo.add_faces(coll.id, ident.id, faces)
                else:
                    repo.delete_identity(coll.id, who)
                committed = time.monotonic()
                times[mode].append((parent.recv() - committed) * 1000)
        parent.send(None)
        node.join(60)
    return {
        mode: {
            "p50_ms": round(float(np.percentile(v, 50)), 1),
            "p99_ms": round(float(np.percentile(v, 99)), 1),
        }
        for mode, v in times.items()
    }


def service_freshness(server: str, milvus_url: str, trials: int) -> dict[str, object]:
    """Both stores on a new Postgres database (dropped afterwards), ``trials`` each."""
    from identity_service.store import upgrade

    base = make_url(server)
    name = f"faceid_bench_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        url = base.set(database=name).render_as_string(hide_password=False)
        upgrade(url)
        result: dict[str, object] = {
            "faiss": _one_store(url, "faiss", trials),
            "milvus": _one_store(url, milvus_url, trials),
        }
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    faiss_fig, milvus_fig = result["faiss"], result["milvus"]
    result["ratio_p50"] = {  # type: ignore[index]
        m: round(milvus_fig[m]["p50_ms"] / max(faiss_fig[m]["p50_ms"], 0.1), 2)  # type: ignore[index]
        for m in ("add", "remove")
    }
    result |= {"trials": trials, "gallery_faces": GALLERY, "poll_interval_s": POLL}
    print(f"service freshness: {result}")
    return result
