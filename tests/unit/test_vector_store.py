"""Galleries on both vector stores (tests/vector_stores.py: in-process FAISS and a real
milvus-lite server), through FaceService and its followers on a SQLite database: add, find,
delete (never returned), restart, reindex; and what only Milvus has: names, the applier lock,
a rebuild after the collection is dropped, a kill -9 mid-batch."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from identity_service import FaceService, Settings
from identity_service.config import IndexSettings
from identity_service.errors import ConfigurationError
from identity_service.index.milvus import MilvusConfig, collection_alias, redact
from identity_service.index.milvus_sync import MilvusFollower
from identity_service.store import NewFace

DIM = 32
APPLIER = Path(__file__).resolve().parents[1] / "milvus_applier.py"


def _vectors(n: int, seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _settings(data_dir: Path, vector_store: str) -> Settings:
    index = IndexSettings(vector_store=vector_store, poll_interval=0.0)
    return Settings(data_dir=data_dir, workers=1, index=index)


def _add(service: FaceService, coll, vectors: np.ndarray, start: int = 0, per: int = 1) -> None:
    """Identities p<start>, ... with ``per`` faces each (rows of ``vectors`` in order)."""
    for first in range(0, len(vectors), per):
        ident = service.repo.upsert_identity(coll.id, f"p{start + first // per}", None, None)
        rows = enumerate(vectors[first : first + per], start=first)
        box, marks, tag = [0, 0, 1, 1], [[0, 0]] * 5, coll.model_tag
        faces = [NewFace(f"{start}-{i:060x}", 0, box, marks, 1.0, None, v, tag) for i, v in rows]
        service.repo.add_faces(coll.id, ident.id, faces)
    service.galleries.notify_changed(coll)


def _collection(service: FaceService, name: str = "g"):
    return service.repo.create_collection(
        name, model="synthetic", model_version="1", dim=DIM, threshold=0.5
    )


def _stored_ids(service: FaceService, coll) -> np.ndarray:
    return np.sort(service.repo.all_embeddings(coll.id)[0])


# -- configuration and names (no server) -----------------------------------------------------
def test_milvus_url_options_and_errors():
    config = MilvusConfig.from_url("milvus://u:p%40ss@db.example:1234/faces?prefix=prod&ef=64")
    assert config.uri == "http://db.example:1234" and config.db_name == "faces"
    assert (config.user, config.password, config.prefix, config.ef) == ("u", "p@ss", "prod", 64)
    assert (config.m, config.ef_construction, config.consistency) == (32, 200, "Session")
    assert config.display() == "http://db.example:1234/faces"
    assert MilvusConfig.from_url("milvus://h?tls=1").uri == "https://h:19530"
    assert redact("milvus://u:secret@h:1") == "milvus://***@h:1"
    for bad in ("milvus://h?nprobe=3", "milvus://h?prefix=no-dash", "milvus://h?ef=x", "http://h"):
        with pytest.raises(ConfigurationError):
            MilvusConfig.from_url(bad)
    with pytest.raises(ValueError):
        IndexSettings(vector_store="redis://h")
    assert IndexSettings().vector_store == "faiss"


def test_collection_names_follow_milvus_rules_one_per_collection_and_model():
    names = {
        collection_alias("faceid", cid, tag)
        for cid in (1, 2)
        for tag in ("fused-dlib-mobilefacenet@1", "arcface-w600k-r50@2")
    }
    assert len(names) == 4
    weird = collection_alias("faceid", 7, "ünï/cøde model@v1.2" * 20)
    assert weird.startswith("faceid_c7_") and len(weird) <= 231
    assert all(c.isascii() and (c.isalnum() or c == "_") for c in weird)


# -- both stores -----------------------------------------------------------------------------
def test_add_find_and_delete_is_never_returned(vector_store, tmp_path):
    service = FaceService.embedded(_settings(tmp_path, vector_store))
    coll = _collection(service)
    vectors = _vectors(300, 1)
    _add(service, coll, vectors, per=3)  # 100 identities of 3 faces
    follower = service.galleries.fresh(coll)
    assert len(follower) == 300
    match = service.find(coll, vectors[31], k=2)[0]
    assert match.external_id == "p10" and match.similarity == pytest.approx(1.0, abs=1e-5)
    batch = service.find_batch(coll, list(vectors[[0, 299]]), k=1)
    assert [b[0].external_id for b in batch] == ["p0", "p99"]
    gone = service.repo.faces_of_identity(coll.id, "p10")
    assert service.delete_identity(coll, "p10") == 3
    _, ids = follower.search(vectors[30:33], 300)
    assert not {f.id for f in gone} & set(ids.ravel().tolist())
    assert all(m.external_id != "p10" for m in service.find(coll, vectors[31], k=10))
    assert len(service.galleries.fresh(coll)) == 297 and gone[0].id not in follower
    assert set(follower.index.ids().tolist()) == set(_stored_ids(service, coll).tolist())
    service.close()


def test_restart_keeps_the_gallery_and_replays_what_it_missed(vector_store, tmp_path, monkeypatch):
    settings = _settings(tmp_path, vector_store)
    first = FaceService.embedded(settings)
    coll = _collection(first)
    vectors = _vectors(120, 2)
    _add(first, coll, vectors[:100])
    first.snapshot(coll)
    first.close()
    writer = FaceService(settings)  # writes while no query node runs
    _add(writer, coll, vectors[100:], start=100)
    writer.repo.delete_identity(coll.id, "p5")
    writer.close()

    if vector_store != "faiss":  # Milvus keeps its data: a restart refills nothing
        monkeypatch.setattr(MilvusFollower, "_fill", lambda self: pytest.fail("refilled"))
    restarted = FaceService(settings)
    follower = restarted.galleries.follower(coll)
    assert len(follower) == 119
    assert restarted.find(coll, vectors[110], k=1)[0].external_id == "p110"
    assert all(m.external_id != "p5" for m in restarted.find(coll, vectors[5], k=5))
    restarted.close()


def test_reindex_swaps_while_searches_go_on(vector_store, tmp_path):
    service = FaceService.embedded(_settings(tmp_path, vector_store))
    coll = _collection(service)
    vectors = _vectors(400, 3)
    _add(service, coll, vectors)
    errors: list[BaseException] = []
    stop = threading.Event()

    def searching() -> None:
        try:
            while not stop.is_set():
                assert service.find(coll, vectors[7], k=1)[0].external_id == "p7"
        except BaseException as exc:
            errors.append(exc)

    follower = service.galleries.follower(coll)
    if vector_store != "faiss":
        follower.drop_grace_s = 0.2  # the old collection outlives the swap this long
    thread = threading.Thread(target=searching)
    thread.start()
    try:
        assert service.rebuild_index(coll) == 400
        assert service.rebuild_index(coll) == 400
    finally:
        stop.set()
        thread.join()
    assert not errors, errors[0]
    if vector_store != "faiss":  # the old collections are dropped after their grace
        deadline = time.monotonic() + 10
        while len(follower.remote.physicals()) > 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(follower.remote.physicals()) == 1
    service.close()


# -- Milvus only -----------------------------------------------------------------------------
def test_milvus_rebuilds_from_the_database_when_its_collection_is_dropped(milvus_server, tmp_path):
    settings = _settings(tmp_path, milvus_server.url("t_dropped"))
    service = FaceService.embedded(settings)
    coll = _collection(service)
    vectors = _vectors(200, 4)
    _add(service, coll, vectors)
    follower = service.galleries.follower(coll)
    client = milvus_server.client()
    physical = follower.remote.physical()
    client.drop_alias(alias=follower.remote.alias)
    client.drop_collection(physical)
    # A running node finds out on its next search, and rebuilds from the database.
    assert service.find(coll, vectors[9], k=1)[0].external_id == "p9"
    assert follower.remote.physical() not in (None, physical)
    service.close()
    # Dropped while no node ran (state row included): the next start rebuilds.
    follower.remote.drop_all()
    restarted = FaceService(settings)
    assert len(restarted.galleries.follower(coll)) == 200
    assert restarted.find(coll, vectors[150], k=1)[0].external_id == "p150"
    restarted.close()


def test_milvus_collection_of_another_database_is_never_used(milvus_server, tmp_path):
    """Same prefix, two databases whose collections both got id 1: each sees its own faces,
    because the state row names the collection (id and creation time) it was built for."""
    url = milvus_server.url("t_owner")
    a = FaceService.embedded(_settings(tmp_path / "a", url))
    coll_a = _collection(a)
    _add(a, coll_a, _vectors(50, 5))
    a.galleries.follower(coll_a)
    a.close()
    b = FaceService.embedded(_settings(tmp_path / "b", url))
    coll_b = _collection(b)
    assert coll_b.id == coll_a.id
    _add(b, coll_b, _vectors(30, 6))
    assert len(b.galleries.fresh(coll_b)) == 30
    b.close()
    a = FaceService(_settings(tmp_path / "a", url))
    assert len(a.galleries.follower(coll_a)) == 50  # b's state was ahead of a's log: rebuilt
    a.close()


def test_milvus_concurrent_appliers_give_each_face_once(milvus_server, tmp_path):
    settings = _settings(tmp_path, milvus_server.url("t_concurrent"))
    writer = FaceService.embedded(settings)
    coll = _collection(writer)
    nodes = [FaceService(settings) for _ in range(3)]
    for node in nodes:
        node.galleries.follower(coll)
    vectors = _vectors(600, 7)
    stop = threading.Event()
    errors: list[BaseException] = []

    def polling(node: FaceService) -> None:
        try:
            while not stop.is_set():
                node.galleries.fresh(coll, force=True)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=polling, args=(n,)) for n in nodes]
    for t in threads:
        t.start()
    try:
        for lo in range(0, 600, 60):
            _add(writer, coll, vectors[lo : lo + 60], start=lo, per=6)
            writer.delete_identity(coll, f"p{lo}")
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not errors, errors[0]
    follower = writer.galleries.fresh(coll, force=True)
    stored = follower.remote.ids()
    assert len(stored) == len(np.unique(stored)) == follower.remote.count("Strong") == 540
    assert np.array_equal(np.sort(stored), _stored_ids(writer, coll))
    for node in [writer, *nodes]:
        node.close()


def test_kill_9_mid_batch_then_restart_gives_each_face_once(milvus_server, tmp_path):
    url = milvus_server.url("t_kill")
    settings = _settings(tmp_path, url)
    service = FaceService.embedded(settings)
    coll = _collection(service)
    _add(service, coll, _vectors(10, 8), per=10)
    follower = service.galleries.follower(coll)  # Milvus at the log's position 10
    writer = FaceService(settings)  # no follower loaded: nothing applies what it writes
    _add(writer, coll, _vectors(6000, 9), start=1, per=100)
    writer.close()
    for person in range(1, 60, 12):
        service.repo.delete_identity(coll.id, f"p{person}")  # 500 removes in the log
    backlog = service.repo.max_seq(coll.id) - follower.watermark
    assert backlog == 6500

    child = subprocess.Popen(
        [sys.executable, str(APPLIER), str(tmp_path), url, str(coll.id), "3"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        lines = [child.stdout.readline() for _ in range(3)]  # type: ignore[union-attr]
    finally:
        child.kill()  # SIGKILL: no cleanup of any kind
        child.wait(30)
    assert lines[-1].startswith("upserted 3"), lines
    # The third page's vectors are in Milvus; the recorded position is still before them.
    first, last = (int(x) for x in lines[-1].split()[2:4])
    state = follower.remote.state()
    assert state is not None and state.seq < service.repo.max_seq(coll.id)
    assert first in follower and last in follower
    service.close()

    restarted = FaceService(settings)
    after = restarted.galleries.follower(coll)
    stored = after.remote.ids()
    assert len(stored) == len(np.unique(stored)) == after.remote.count("Strong")  # each once
    assert np.array_equal(np.sort(stored), _stored_ids(restarted, coll))
    assert len(stored) == 10 + 6000 - 500
    restarted.close()


def test_switching_from_faiss_to_milvus_and_back_as_the_runbook_says(
    milvus_server, tmp_path, monkeypatch, capsys
):
    """docs/operations.md: fill Milvus from the database while FAISS nodes serve, keep it
    following, start nodes on Milvus (no refill, same answers), then back to FAISS."""
    from identity_service.config import get_settings
    from identity_service.service import vector_store

    url = milvus_server.url("t_switch")
    faiss_node = FaceService.embedded(_settings(tmp_path, "faiss"))
    coll = _collection(faiss_node)
    vectors = _vectors(300, 10)
    _add(faiss_node, coll, vectors[:200], per=2)

    monkeypatch.setenv("FACEID_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("FACEID_VECTOR_STORE", url)
    get_settings.cache_clear()
    try:
        assert vector_store.main(["fill"]) == 0
        followers: dict = {}
        milvus_settings = _settings(tmp_path, url)
        vector_store.fill(faiss_node.repo, milvus_settings, followers)  # "follow", one round
        _add(faiss_node, coll, vectors[200:], start=100, per=2)  # writes go on meanwhile
        faiss_node.delete_identity(coll, "p3")
        vector_store.fill(faiss_node.repo, milvus_settings, followers)
        capsys.readouterr()
        assert vector_store.main(["check"]) == 0
    finally:
        get_settings.cache_clear()
    (figures,) = json.loads(capsys.readouterr().out).values()
    assert figures["database_faces"] == figures["milvus_faces"] == 298
    assert figures["database_seq"] == figures["milvus_seq"]

    monkeypatch.setattr(MilvusFollower, "_fill", lambda self: pytest.fail("refilled"))
    milvus_node = FaceService(milvus_settings)
    probes = list(vectors[::7])

    def named(results: list) -> list[list[str]]:
        return [[m.external_id for m in r] for r in results]

    before = faiss_node.find_batch(coll, probes, k=3)
    after = milvus_node.find_batch(coll, probes, k=3)
    assert named(before) == named(after)
    assert before[0].operating_point == after[0].operating_point  # same calibration
    milvus_node.close()
    faiss_node.close()
    back = FaceService(_settings(tmp_path, "faiss"))  # and back: FAISS rebuilds or replays
    assert back.find(coll, vectors[250], k=1)[0].external_id == "p125"
    back.close()
