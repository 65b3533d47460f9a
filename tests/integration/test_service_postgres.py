"""FaceService in its production shape: Postgres, two service instances (two query nodes)
sharing one database, concurrent enroll + find, snapshot + replay vs a fresh rebuild."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from identity_service import FaceService, Settings
from identity_service.config import IndexSettings
from identity_service.errors import SchemaOutdatedError
from identity_service.store import upgrade

pytestmark = pytest.mark.integration


def _settings(url: str, tmp_path, name: str, vector_store: str = "faiss") -> Settings:
    return Settings(
        database_url=url,
        data_dir=tmp_path / name,
        workers=1,
        index=IndexSettings(poll_interval=0.0, vector_store=vector_store),
    )


def test_refuses_an_unmigrated_database(postgres_url, tmp_path):
    with pytest.raises(SchemaOutdatedError, match="faceid db upgrade"):
        FaceService(_settings(postgres_url, tmp_path, "a"))


def _vectors(n: int, seed: int, dim: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_two_nodes_concurrent_enroll_and_find_and_total_delete(
    postgres_url, tmp_path, lfw_image, vector_store
):
    """On each vector store; on Milvus both nodes share one collection, which one of them at a
    time (a Postgres advisory lock) brings up to date."""
    upgrade(postgres_url)
    writer = FaceService(_settings(postgres_url, tmp_path, "writer", vector_store))
    reader = FaceService(_settings(postgres_url, tmp_path, "reader", vector_store))
    coll = writer.create_collection("pg")
    writer.enroll("pg", "Adam_Sandler", [lfw_image("Adam_Sandler", 1)])
    probe = writer.pipeline().represent(lfw_image("Adam_Sandler", 2))[0].embedding
    assert reader.find("pg", probe, k=1)[0].external_id == "Adam_Sandler"

    # Many identities written through the repository while the reader keeps querying.
    vectors = _vectors(300, 0, coll.dim)
    errors: list[BaseException] = []
    stop = threading.Event()

    def query_loop() -> None:
        try:
            while not stop.is_set():
                matches = reader.find("pg", probe, k=3)
                assert matches[0].external_id == "Adam_Sandler"
        except BaseException as exc:
            errors.append(exc)

    from identity_service.store import NewFace

    thread = threading.Thread(target=query_loop)
    thread.start()
    try:
        for i, vec in enumerate(vectors):
            ident = writer.repo.upsert_identity(coll.id, f"synthetic-{i}")
            writer.repo.add_faces(
                coll.id,
                ident.id,
                [
                    NewFace(
                        f"{i:064x}", 0, [0, 0, 1, 1], [[0, 0]] * 5, 1.0, None, vec, coll.model_tag
                    )
                ],
            )
    finally:
        stop.set()
        thread.join()
    assert not errors, errors[0]

    # The reader sees every face; its index equals a fresh rebuild from the database.
    follower = reader.galleries.fresh(coll, force=True)
    assert len(follower) == 301
    ids, _stored, _ = reader.repo.all_embeddings(coll.id)
    assert set(follower.index.ids().tolist()) == set(ids.tolist())
    hit = reader.find("pg", vectors[123], k=1)[0]
    assert hit.external_id == "synthetic-123" and hit.similarity == pytest.approx(1.0, abs=1e-5)

    # Snapshot on the reader, delete on the writer, restart the reader: still gone.
    reader.snapshot("pg")
    writer.delete_identity("pg", "Adam_Sandler")
    assert all(m.external_id != "Adam_Sandler" for m in reader.find("pg", probe, k=5))
    reader.close()
    restarted = FaceService(_settings(postgres_url, tmp_path, "reader", vector_store))
    assert all(m.external_id != "Adam_Sandler" for m in restarted.find("pg", probe, k=5))
    assert len(restarted.galleries.follower(coll)) == 300
    restarted.close()
    writer.close()
