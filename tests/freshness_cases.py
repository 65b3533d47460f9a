"""Two query nodes (two FaceService instances) on one database: what one writes, the other's
``find`` answers with once the freshness bound (``FACEID_INDEX_POLL_INTERVAL``) has passed,
whether its background poller runs (the API's shape) or it polls on its own (a stale node).
Run on SQLite (tests/unit/test_query_freshness.py) and Postgres
(tests/integration/test_query_freshness_postgres.py)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import event

from identity_service import FaceService
from identity_service.config import IndexSettings, ModelSettings, Settings
from identity_service.errors import UnknownCollectionError
from identity_service.store import NewFace, upgrade

BOUND = 0.3  # the nodes' FACEID_INDEX_POLL_INTERVAL, seconds
DIM = 128
PEOPLE = ("alice", "bob", "carol")


def settle() -> None:
    """Wait out the freshness bound: every change made before is now in force everywhere."""
    time.sleep(BOUND * 1.2)


@contextmanager
def two_nodes(url: str | None, tmp_path: Path, poller: bool) -> Iterator[tuple[Any, Any]]:
    url = url or f"sqlite:///{tmp_path / 'shared.sqlite3'}"
    upgrade(url)
    nodes = [
        FaceService(
            Settings(
                database_url=url,
                data_dir=tmp_path / name,
                workers=1,
                models=ModelSettings(embedder="dlib-resnet-v1"),
                index=IndexSettings(poll_interval=BOUND),
            )
        )
        for name in ("writer", "reader")
    ]
    if poller:
        for node in nodes:
            node.galleries.start_poller()
    try:
        yield nodes[0], nodes[1]
    finally:
        for node in nodes:
            node.close()


def _unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v, axis=-1, keepdims=True)).astype(np.float32)


def _face(person: str, i: int, vector: np.ndarray) -> NewFace:
    sha = f"{person}{i}".ljust(64, "0")
    return NewFace(sha, 0, [0, 0, 1, 1], [[0, 0]] * 5, 1.0, None, vector, "dlib-resnet-v1@1")


def gallery(node: FaceService, name: str = "staff", seed: int = 0) -> dict[str, np.ndarray]:
    """A collection of three people, three faces each; returns a probe per person."""
    rng = np.random.default_rng(seed)
    coll = node.repo.create_collection(name, "dlib-resnet-v1", "1", DIM)
    probes = {}
    for person in PEOPLE:
        centre = _unit(rng.normal(size=DIM))
        ident = node.repo.upsert_identity(coll.id, f"{name}-{person}", name=person.title())
        faces = _unit(centre + 0.15 * rng.normal(size=(3, DIM)) / np.sqrt(DIM))
        node.repo.add_faces(coll.id, ident.id, [_face(person, i, f) for i, f in enumerate(faces)])
        probes[person] = _unit(centre + 0.15 * rng.normal(size=DIM) / np.sqrt(DIM))
    return probes


def ids(matches: object) -> list[str]:
    return [m.external_id for m in matches]  # type: ignore[attr-defined]


def check_deleted_identity_never_returned(writer: FaceService, reader: FaceService) -> None:
    probes = gallery(writer)
    assert reader.find("staff", probes["alice"], k=3)[0].external_id == "staff-alice"
    writer.delete_identity("staff", "staff-alice")
    assert "staff-alice" not in ids(writer.find("staff", probes["alice"], k=3))  # its own write
    settle()
    for _ in range(3):
        found = reader.find("staff", probes["alice"], k=3)
        assert "staff-alice" not in ids(found) and not found[0].accepted
    # a face enrolled since comes with its owner's name
    coll = writer.collection("staff")
    ident = writer.repo.upsert_identity(coll.id, "staff-dave", name="Dave")
    writer.repo.add_faces(coll.id, ident.id, [_face("d", 0, probes["alice"])])
    settle()
    best = reader.find("staff", probes["alice"], k=1)[0]
    assert (best.external_id, best.name) == ("staff-dave", "Dave")


def check_threshold_and_calibration_follow(writer: FaceService, reader: FaceService) -> None:
    probes = gallery(writer)
    before = reader.find("staff", probes["bob"], k=1).operating_point
    assert before.target_fpir == 0.01
    writer.set_target_fpir("staff", 0.1)
    settle()
    point = reader.find("staff", probes["bob"], k=1).operating_point
    assert point.target_fpir == 0.1 and point.threshold > before.threshold
    assert point == writer.operating_point("staff")
    # a new open-set calibration, with strangers who look like bob, moves it on both nodes
    rng = np.random.default_rng(5)
    strangers = list(_unit(probes["bob"] + 0.015 * rng.normal(size=(200, DIM))))
    writer.calibrate_open_set("staff", strangers=strangers)
    settle()
    moved = reader.find("staff", probes["bob"], k=1).operating_point
    mine = writer.operating_point("staff")  # its scores in full, the stored ones to 6 digits
    assert moved.source == mine.source and moved.threshold == pytest.approx(
        mine.threshold, abs=1e-5
    )
    assert moved.threshold < point.threshold


def check_identity_names_follow(writer: FaceService, reader: FaceService) -> None:
    probes = gallery(writer)
    assert reader.find("staff", probes["bob"], k=1)[0].name == "Bob"
    coll = writer.collection("staff")
    writer.repo.update_identity(coll.id, "staff-bob", name="Robert")
    settle()
    assert reader.find("staff", probes["bob"], k=1)[0].name == "Robert"
    writer.repo.upsert_identity(coll.id, "staff-bob", name="Bobby")
    settle()
    assert reader.find("staff", probes["bob"], k=1)[0].name == "Bobby"


def check_collection_delete_and_switch_follow(writer: FaceService, reader: FaceService) -> None:
    probes = gallery(writer, "live", seed=1)
    other = gallery(writer, "next", seed=2)
    assert reader.find("live", probes["alice"], k=1)[0].external_id == "live-alice"
    live, nxt = writer.collection("live"), writer.collection("next")
    writer.repo.switch_collections(live.id, nxt.id, "live", "live_old", None)
    settle()
    assert reader.find("live", other["carol"], k=1)[0].external_id == "next-carol"
    writer.delete_collection("live")
    settle()
    with pytest.raises(UnknownCollectionError):
        reader.find("live", probes["alice"], k=1)
    assert reader.find("live_old", probes["alice"], k=1)[0].external_id == "live-alice"


def check_fresh_find_asks_no_database(writer: FaceService, reader: FaceService) -> None:
    """With the poller on, a find on a warm node runs no SQL in the caller's thread."""
    probes = gallery(writer)
    reader.find("staff", probes["carol"], k=1)  # loads the gallery and the calibration
    caller = threading.get_ident()
    statements: list[str] = []

    def count(_conn, _cursor, statement, *_args) -> None:  # type: ignore[no-untyped-def]
        if threading.get_ident() == caller:
            statements.append(statement)

    event.listen(reader.engine, "before_cursor_execute", count)
    try:
        answered = [reader.find("staff", probes["carol"], k=1) for _ in range(20)]
    finally:
        event.remove(reader.engine, "before_cursor_execute", count)
    assert statements == [] and {m[0].external_id for m in answered} == {"staff-carol"}


CASES = [
    check_deleted_identity_never_returned,
    check_threshold_and_calibration_follow,
    check_identity_names_follow,
    check_collection_delete_and_switch_follow,
]
