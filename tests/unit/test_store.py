"""Repository behaviour on SQLite."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from identity_service.errors import (
    DuplicateError,
    InvalidIdentifierError,
    InvalidMetadataError,
    ModelMismatchError,
    NotFoundError,
    UnknownCollectionError,
    UnknownFaceError,
    UnknownIdentityError,
)
from identity_service.service.ids import check_external_id
from identity_service.store import CollectionRecord, NewFace, Repository, make_engine, upgrade
from identity_service.store.metadata import MAX_DEPTH

DIM = 8


@pytest.fixture(scope="session")
def migrated_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("store") / "template.sqlite3"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture
def repo(migrated_db: Path, tmp_path: Path) -> Iterator[Repository]:
    path = tmp_path / "faceid.sqlite3"
    shutil.copy(migrated_db, path)  # migrating once per session keeps the tests quick
    engine = make_engine(f"sqlite:///{path}")
    yield Repository(engine)
    engine.dispose()


@pytest.fixture
def coll(repo: Repository) -> CollectionRecord:
    return repo.create_collection("people", model="dlib-resnet-v1", model_version="1", dim=DIM)


def vec(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
    return v / np.linalg.norm(v)


def face(coll: CollectionRecord, sha: str, index: int = 0, seed: int = 0) -> NewFace:
    return NewFace(
        image_sha256=sha * 64 if len(sha) == 1 else sha,
        face_index=index,
        box=[1.0, 2.0, 30.0, 40.0],
        landmarks=[[float(i), float(i + 1)] for i in range(5)],
        det_score=0.99,
        quality=0.5,
        embedding=vec(seed),
        model=coll.model_tag,
    )


def test_collections(repo: Repository, coll: CollectionRecord) -> None:
    assert coll.metric == "cosine" and coll.tenant == "default" and coll.threshold is None
    assert coll.created.tzinfo is not None
    with pytest.raises(DuplicateError):
        repo.create_collection("people", model="m", model_version="1", dim=DIM)
    other = repo.create_collection("people", "m", "2", 4, tenant="acme", threshold=0.4)
    assert repo.get_collection("people", tenant="acme") == other
    assert repo.get_collection("people") == coll == repo.get_collection_by_id(coll.id)
    assert [c.tenant for c in repo.list_collections()] == ["acme", "default"]
    assert repo.list_collections(tenant="acme") == [other]
    with pytest.raises(UnknownCollectionError):
        repo.get_collection("nobody")
    with pytest.raises(UnknownCollectionError):
        repo.get_collection_by_id(999)
    assert repo.set_threshold(coll.id, 0.33).threshold == 0.33


def test_identities_upsert_update_list(repo: Repository, coll: CollectionRecord) -> None:
    a = repo.upsert_identity(coll.id, "alice", name="Alice", metadata={"team": "x"})
    again = repo.upsert_identity(coll.id, "alice")
    assert again.id == a.id and again.name == "Alice" and again.metadata == {"team": "x"}
    renamed = repo.upsert_identity(coll.id, "alice", name="Alice B", metadata={"k": 1})
    assert renamed.name == "Alice B" and renamed.metadata == {"k": 1}
    merged = repo.update_identity_metadata(coll.id, "alice", {"j": 2})
    assert merged.metadata == {"k": 1, "j": 2}
    replaced = repo.update_identity(coll.id, "alice", metadata={"z": 0}, merge=False)
    assert replaced.metadata == {"z": 0}
    assert repo.get_identity(coll.id, "alice") == replaced

    for i in range(5):
        repo.upsert_identity(coll.id, f"p{i}")
    page = repo.list_identities(coll.id, offset=1, limit=3)
    assert [i.external_id for i in page] == ["p0", "p1", "p2"]
    with pytest.raises(UnknownIdentityError):
        repo.get_identity(coll.id, "bob")
    with pytest.raises(UnknownCollectionError):
        repo.upsert_identity(12345, "x")


def test_add_faces_dedupes_and_logs(repo: Repository, coll: CollectionRecord) -> None:
    alice = repo.upsert_identity(coll.id, "alice", name="Alice")
    faces = [face(coll, "a", 0, 1), face(coll, "a", 1, 2), face(coll, "a", 0, 1)]
    ids = repo.add_faces(coll.id, alice.id, faces)
    assert len(ids) == 2
    assert repo.add_faces(coll.id, alice.id, faces) == []  # re-enrolling adds nothing
    new = repo.add_faces(coll.id, alice.id, [face(coll, "a", 1, 2), face(coll, "b", 0, 3)])
    assert len(new) == 1 and new[0] > max(ids)

    log = repo.log_since(coll.id, 0)
    assert [(e.face_id, e.op) for e in log] == [(i, "add") for i in [*ids, *new]]
    assert [e.seq for e in log] == sorted(e.seq for e in log)
    np.testing.assert_array_equal(log[0].embedding, vec(1))
    assert repo.max_seq(coll.id) == log[-1].seq
    assert repo.log_since(coll.id, log[0].seq, limit=1)[0].seq == log[1].seq

    # the same image may be enrolled for another identity
    bob = repo.upsert_identity(coll.id, "bob")
    assert len(repo.add_faces(coll.id, bob.id, [face(coll, "a", 0, 4)])) == 1
    counts = repo.counts(coll.id)
    assert (counts.identities, counts.faces) == (2, 4)


def test_add_faces_rejects_other_models_and_unknown_identity(
    repo: Repository, coll: CollectionRecord
) -> None:
    alice = repo.upsert_identity(coll.id, "alice")
    wrong_model = face(coll, "a")
    wrong_model.model = "arcface@1"
    with pytest.raises(ModelMismatchError, match="arcface@1"):
        repo.add_faces(coll.id, alice.id, [face(coll, "b"), wrong_model])
    wrong_dim = face(coll, "c")
    wrong_dim.embedding = np.zeros(DIM + 1, np.float32)
    with pytest.raises(ModelMismatchError) as err:
        repo.add_faces(coll.id, alice.id, [wrong_dim])
    assert err.value.http_status == 409
    assert repo.counts(coll.id).faces == 0  # nothing of a rejected batch was written
    assert repo.max_seq(coll.id) == 0
    with pytest.raises(UnknownIdentityError):
        repo.add_faces(coll.id, alice.id + 100, [face(coll, "d")])
    other = repo.create_collection("other", "dlib-resnet-v1", "1", DIM)
    with pytest.raises(UnknownIdentityError):  # identity of another collection
        repo.add_faces(other.id, alice.id, [face(coll, "d")])


def test_faces_by_ids_and_identity_reads(repo: Repository, coll: CollectionRecord) -> None:
    alice = repo.upsert_identity(coll.id, "alice", name="Alice")
    ids = repo.add_faces(coll.id, alice.id, [face(coll, "a", 0, 1), face(coll, "b", 0, 2)])
    found = repo.faces_by_ids([*ids, 9999])
    assert set(found) == set(ids)
    rec = found[ids[0]]
    assert (rec.external_id, rec.name, rec.identity_id) == ("alice", "Alice", alice.id)
    assert rec.image_sha256 == "a" * 64 and rec.face_index == 0
    assert rec.box == [1.0, 2.0, 30.0, 40.0] and rec.landmarks[4] == [4.0, 5.0]
    assert rec.det_score == pytest.approx(0.99) and rec.quality == pytest.approx(0.5)
    assert rec.model == coll.model_tag
    assert [f.id for f in repo.faces_of_identity(coll.id, "alice")] == ids
    emb = repo.identity_embeddings(coll.id, "alice")
    assert emb.shape == (2, DIM) and emb.dtype == np.float32
    np.testing.assert_array_equal(emb[1], vec(2))
    assert repo.faces_by_ids([]) == {}


def test_delete_identity_writes_remove_rows_and_a_new_enrollment_starts_afresh(
    repo: Repository, coll: CollectionRecord
) -> None:
    alice = repo.upsert_identity(coll.id, "alice", name="Alice", metadata={"a": 1})
    bob = repo.upsert_identity(coll.id, "bob")
    ids = repo.add_faces(coll.id, alice.id, [face(coll, "a", 0, 1), face(coll, "b", 0, 2)])
    bob_ids = repo.add_faces(coll.id, bob.id, [face(coll, "c", 0, 3)])
    watermark = repo.max_seq(coll.id)

    assert repo.delete_identity(coll.id, "alice") == 2
    tail = repo.log_since(coll.id, watermark)
    assert sorted((e.face_id, e.op) for e in tail) == [(i, "remove") for i in ids]
    assert all(e.embedding is None for e in tail)
    # an 'add' whose face is gone carries no vector any more
    assert [e.embedding is None for e in repo.log_since(coll.id, 0)][:3] == [True, True, False]
    assert repo.faces_by_ids(ids + bob_ids).keys() == {bob_ids[0]}
    with pytest.raises(UnknownIdentityError):
        repo.get_identity(coll.id, "alice")
    with pytest.raises(UnknownIdentityError):
        repo.delete_identity(coll.id, "alice")
    with pytest.raises(UnknownIdentityError):
        repo.add_faces(coll.id, alice.id, [face(coll, "z")])
    assert [i.external_id for i in repo.list_identities(coll.id)] == ["bob"]
    assert repo.counts(coll.id).faces == 1

    # Enrolling the external id again makes a new identity: a new id, none of the deleted
    # one's name, metadata or creation time.
    new = repo.upsert_identity(coll.id, "alice", name="Alice Two")
    assert new.id > max(alice.id, bob.id)
    assert (new.name, new.metadata, new.deleted) == ("Alice Two", {}, False)
    assert new.created >= alice.created
    assert repo.faces_of_identity(coll.id, "alice") == []
    # a batch still holding the deleted identity's id cannot add to the new one
    with pytest.raises(UnknownIdentityError):
        repo.add_faces(coll.id, alice.id, [face(coll, "z")])
    # the same image can be enrolled again and gets a fresh face id
    again = repo.add_faces(coll.id, new.id, [face(coll, "a", 0, 1)])
    assert len(again) == 1 and again[0] > max(ids + bob_ids)
    assert repo.purge(coll.id) == 0  # the tombstone was replaced, not kept


def test_delete_face_and_purge(repo: Repository, coll: CollectionRecord) -> None:
    alice = repo.upsert_identity(coll.id, "alice")
    ids = repo.add_faces(coll.id, alice.id, [face(coll, "a", 0, 1), face(coll, "b", 0, 2)])
    repo.delete_face(coll.id, ids[0])
    assert (repo.log_since(coll.id, 0)[-1].face_id, repo.log_since(coll.id, 0)[-1].op) == (
        ids[0],
        "remove",
    )
    with pytest.raises(UnknownFaceError):
        repo.delete_face(coll.id, ids[0])
    other = repo.create_collection("other", "dlib-resnet-v1", "1", DIM)
    with pytest.raises(UnknownFaceError):
        repo.delete_face(other.id, ids[1])

    assert repo.purge(coll.id) == 0
    repo.delete_identity(coll.id, "alice")
    assert repo.purge(coll.id) == 1
    assert repo.list_identities(coll.id) == []
    assert repo.upsert_identity(coll.id, "alice").id != alice.id


def test_all_embeddings_snapshot_plus_log_replay(repo: Repository, coll: CollectionRecord) -> None:
    ids, vectors, seq = repo.all_embeddings(coll.id)
    assert ids.shape == (0,) and vectors.shape == (0, DIM) and seq == 0

    alice = repo.upsert_identity(coll.id, "alice")
    first = repo.add_faces(coll.id, alice.id, [face(coll, c, 0, i) for i, c in enumerate("abc")])
    repo.delete_face(coll.id, first[1])
    ids, vectors, seq = repo.all_embeddings(coll.id)
    assert ids.dtype == np.int64 and vectors.dtype == np.float32
    assert ids.tolist() == [first[0], first[2]]
    np.testing.assert_array_equal(vectors[1], vec(2))
    assert seq == repo.max_seq(coll.id)

    # a follower: snapshot, then replay the log after its watermark
    gallery = dict(zip(ids.tolist(), vectors, strict=True))
    later = repo.add_faces(coll.id, alice.id, [face(coll, "d", 0, 7), face(coll, "e", 0, 8)])
    repo.delete_face(coll.id, later[0])
    repo.delete_face(coll.id, first[0])
    for entry in repo.log_since(coll.id, seq):
        if entry.op == "add" and entry.embedding is not None:
            gallery[entry.face_id] = entry.embedding
        elif entry.op == "remove":
            gallery.pop(entry.face_id, None)
    final_ids, _, _ = repo.all_embeddings(coll.id)
    assert sorted(gallery) == final_ids.tolist() == [first[2], later[1]]


def test_delete_collection(repo: Repository, coll: CollectionRecord) -> None:
    alice = repo.upsert_identity(coll.id, "alice")
    repo.add_faces(coll.id, alice.id, [face(coll, "a")])
    cal = repo.add_calibration(
        "dlib-resnet-v1@1", "lfw", 1e-3, 0.4, 0.9, 6000, collection_id=coll.id
    )
    repo.delete_collection(coll.id)
    with pytest.raises(UnknownCollectionError):
        repo.get_collection_by_id(coll.id)
    with pytest.raises(UnknownCollectionError):
        repo.log_since(coll.id, 0)
    assert repo.list_calibrations()[0].id == cal.id
    assert repo.list_calibrations()[0].collection_id is None


def test_concurrent_add_faces_inserts_each_once(repo: Repository, coll: CollectionRecord) -> None:
    alice = repo.upsert_identity(coll.id, "alice")
    faces = [face(coll, f"{i:064x}", 0, i) for i in range(20)]
    results: list[list[int]] = []
    barrier = threading.Barrier(2)

    def work() -> None:
        barrier.wait()
        results.append(repo.add_faces(coll.id, alice.id, faces))

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results[0] + results[1]) == sorted(set(results[0] + results[1]))
    assert len(results[0]) + len(results[1]) == 20
    assert repo.counts(coll.id).faces == 20
    assert len(repo.log_since(coll.id, 0)) == 20


def test_jobs(repo: Repository) -> None:
    job = repo.create_job("enroll", {"images": 3})
    assert job.status == "pending" and job.started is None and job.params == {"images": 3}
    with pytest.raises(DuplicateError):
        repo.create_job("enroll", job_id=job.id)
    running = repo.update_job(job.id, status="running", progress=0.5, counts={"ok": 1})
    assert running.started is not None and running.finished is None
    done = repo.update_job(
        job.id, status="done", progress=1.0, counts={"failed": 1}, add_errors=[{"code": "no_face"}]
    )
    assert done.counts == {"ok": 1, "failed": 1} and done.errors == [{"code": "no_face"}]
    assert done.finished is not None and done.finished >= done.started  # type: ignore[operator]
    assert repo.get_job(job.id) == done
    assert [j.id for j in repo.list_jobs(kind="enroll", status="done")] == [job.id]
    assert repo.list_jobs(kind="reindex") == []
    with pytest.raises(NotFoundError):
        repo.get_job("nope")


def test_calibrations_and_api_keys(repo: Repository) -> None:
    repo.add_calibration("m@1", "lfw", 1e-3, 0.40, 0.95, 6000, report={"eer": 0.02})
    latest = repo.add_calibration("m@1", "lfw", 1e-3, 0.42, 0.96, 6000)
    repo.add_calibration("m@1", "lfw", 1e-4, 0.30, 0.90, 6000)
    assert repo.latest_calibration("m@1", "lfw", target_far=1e-3) == latest
    assert repo.latest_calibration("other") is None
    assert len(repo.list_calibrations("m@1")) == 3

    key = repo.add_api_key("h" * 64, tenant="acme", scopes=["find", "enroll"], name="ci")
    assert key.active and key.scopes == ["find", "enroll"]
    with pytest.raises(DuplicateError):
        repo.add_api_key("h" * 64)
    assert repo.get_api_key("h" * 64) == key
    assert repo.get_api_key("x") is None
    revoked = repo.revoke_api_key(key.id)
    assert not revoked.active and repo.get_api_key("h" * 64) == revoked
    assert repo.list_api_keys(tenant="acme") == [revoked]
    with pytest.raises(NotFoundError):
        repo.revoke_api_key(999)


def test_jobs_are_filtered_by_tenant_before_the_limit(tmp_path):
    url = f"sqlite:///{tmp_path / 'jobs.sqlite3'}"
    upgrade(url)
    repo = Repository(make_engine(url))
    mine = repo.create_job("reindex", {"tenant": "acme"})
    for _ in range(5):
        repo.create_job("reindex", {"tenant": "beta"})
    assert [j.id for j in repo.list_jobs(limit=1, tenant="acme")] == [mine.id]
    legacy = repo.create_job("reindex", {})
    assert [j.id for j in repo.list_jobs(limit=1, tenant="default")] == [legacy.id]


def test_metadata_that_could_not_be_read_back_is_refused_before_any_write(
    repo: Repository, coll: CollectionRecord
) -> None:
    deep: dict = {}
    node = deep
    for _ in range(MAX_DEPTH):
        node["x"] = {}
        node = node["x"]
    for bad in ({"x": "\udfff"}, deep, {"x": float("nan")}):
        with pytest.raises(InvalidMetadataError):
            repo.upsert_identity(coll.id, "carol", metadata=bad)
    with pytest.raises(UnknownIdentityError):
        repo.get_identity(coll.id, "carol")
    shallow = {"a": {"b": [1, {"c": "é"}]}}
    assert repo.upsert_identity(coll.id, "carol", metadata=shallow).metadata == shallow


@pytest.mark.parametrize("bad", ["", ".", "..", "a/b", "a\x00b", "tab\there", "x" * 201, "\udfff"])
def test_the_id_rule(bad: str) -> None:
    with pytest.raises(InvalidIdentifierError):
        check_external_id(bad)
    assert check_external_id("Ana Palacio (2003)…") == "Ana Palacio (2003)…"
