"""The store against a real Postgres: migrations, repository, concurrency."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import numpy as np
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from identity_service.errors import SchemaOutdatedError
from identity_service.store import (
    CollectionRecord,
    NewFace,
    Repository,
    check_schema,
    current_revision,
    downgrade,
    head_revision,
    make_engine,
    upgrade,
)
from identity_service.store.models import Base

pytestmark = pytest.mark.integration

DIM = 16


@pytest.fixture
def repo(postgres_url: str) -> Iterator[Repository]:
    upgrade(postgres_url)
    engine = make_engine(postgres_url)
    yield Repository(engine)
    engine.dispose()


def _face(coll: CollectionRecord, i: int) -> NewFace:
    v = np.random.default_rng(i).standard_normal(DIM).astype(np.float32)
    return NewFace(
        image_sha256=f"{i:064x}",
        face_index=0,
        box=[0.0, 0.0, 10.0, 10.0],
        landmarks=[[1.0, 2.0]] * 5,
        det_score=0.9,
        quality=None,
        embedding=v / np.linalg.norm(v),
        model=coll.model_tag,
    )


def _run_together(n: int, fn: Callable[[], object]) -> list[object]:
    results: list[object] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(n)

    def work() -> None:
        barrier.wait()
        try:
            results.append(fn())
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    return results


def test_migrations_up_and_down(postgres_url: str) -> None:
    engine = make_engine(postgres_url)
    try:
        with pytest.raises(SchemaOutdatedError, match="faceid db upgrade"):
            check_schema(engine)
        upgrade(postgres_url)
        assert current_revision(postgres_url) == head_revision()
        check_schema(engine)
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert diff == [], f"models and migrations disagree: {diff}"
        downgrade(postgres_url, "base")
        assert current_revision(postgres_url) is None
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
        upgrade(postgres_url)
        check_schema(engine)
    finally:
        engine.dispose()


def test_repository_round_trip(repo: Repository) -> None:
    coll = repo.create_collection("people", "dlib-resnet-v1", "1", DIM)
    alice = repo.upsert_identity(coll.id, "alice", name="Alice", metadata={"k": [1, 2]})
    ids = repo.add_faces(coll.id, alice.id, [_face(coll, i) for i in range(3)])
    assert len(ids) == 3 and repo.add_faces(coll.id, alice.id, [_face(coll, 0)]) == []
    found = repo.faces_by_ids(ids)
    assert found[ids[0]].name == "Alice" and found[ids[0]].external_id == "alice"

    got_ids, vectors, seq = repo.all_embeddings(coll.id)
    assert got_ids.tolist() == ids and vectors.shape == (3, DIM)
    np.testing.assert_array_equal(vectors[2], _face(coll, 2).embedding)
    assert seq == repo.max_seq(coll.id)

    assert repo.delete_identity(coll.id, "alice") == 3
    tail = repo.log_since(coll.id, seq)
    assert sorted(e.face_id for e in tail) == ids and {e.op for e in tail} == {"remove"}
    assert repo.faces_by_ids(ids) == {}
    counts = repo.counts(coll.id)
    assert (counts.identities, counts.faces) == (0, 0)
    again = repo.upsert_identity(coll.id, "alice")
    assert again.id > alice.id and again.name is None  # a new identity, not the deleted one
    assert repo.purge(coll.id) == 0


def test_concurrent_add_faces_inserts_each_once(repo: Repository) -> None:
    coll = repo.create_collection("people", "dlib-resnet-v1", "1", DIM)
    alice = repo.upsert_identity(coll.id, "alice")
    faces = [_face(coll, i) for i in range(50)]
    results = _run_together(2, lambda: repo.add_faces(coll.id, alice.id, faces))
    all_ids = [i for r in results for i in r]  # type: ignore[attr-defined]
    assert len(all_ids) == len(set(all_ids)) == 50
    assert repo.counts(coll.id).faces == 50
    log = repo.log_since(coll.id, 0)
    assert sorted(e.face_id for e in log) == sorted(all_ids)


def test_concurrent_upsert_identity_creates_one(repo: Repository) -> None:
    coll = repo.create_collection("people", "dlib-resnet-v1", "1", DIM)
    results = _run_together(4, lambda: repo.upsert_identity(coll.id, "bob", name="Bob"))
    assert len({r.id for r in results}) == 1  # type: ignore[attr-defined]


def test_log_writers_wait_for_the_collection_lock(repo: Repository, postgres_url: str) -> None:
    """While one transaction holds a collection's log lock, another cannot append to its log,
    so seqs become visible in order (see repository.py)."""
    coll = repo.create_collection("people", "dlib-resnet-v1", "1", DIM)
    alice = repo.upsert_identity(coll.id, "alice")
    other = repo.create_collection("other", "dlib-resnet-v1", "1", DIM)
    bob = repo.upsert_identity(other.id, "bob")
    engine = make_engine(postgres_url)
    try:
        with engine.connect() as holder:
            holder.begin()
            holder.execute(
                text("SELECT id FROM collections WHERE id = :id FOR NO KEY UPDATE"),
                {"id": coll.id},
            )
            done = threading.Event()
            worker = threading.Thread(
                target=lambda: (repo.add_faces(coll.id, alice.id, [_face(coll, 1)]), done.set())
            )
            worker.start()
            # other collections and identity writes are not held up
            assert len(repo.add_faces(other.id, bob.id, [_face(other, 2)])) == 1
            repo.upsert_identity(coll.id, "carol")
            assert not done.wait(0.5), "add_faces did not wait for the collection lock"
            holder.rollback()
            worker.join(timeout=30)
            assert done.is_set()
    finally:
        engine.dispose()
    assert repo.counts(coll.id).faces == 1


def test_jobs_are_filtered_by_tenant_before_the_limit(repo: Repository) -> None:
    mine = repo.create_job("reindex", {"tenant": "acme"})
    for _ in range(5):
        repo.create_job("reindex", {"tenant": "beta"})
    assert [j.id for j in repo.list_jobs(limit=1, tenant="acme")] == [mine.id]
    legacy = repo.create_job("reindex", {})  # a job from before tenants: the default tenant
    assert [j.id for j in repo.list_jobs(limit=1, tenant="default")] == [legacy.id]
