"""Snapshots (round trip, damage, retention) and the IndexFollower's log replay."""

from __future__ import annotations

import threading
from dataclasses import replace

import numpy as np
import pytest

from identity_service.index import (
    CorruptSnapshotError,
    GalleryIndex,
    IndexFollower,
    LogEntry,
    LogSource,
    latest_snapshot,
    list_snapshots,
    load_snapshot,
    save_snapshot,
    save_to_folder,
)

DIM = 16


def unit_rows(n: int, dim: int = DIM, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def filled(kind: str, n: int = 1500, **params) -> tuple[GalleryIndex, np.ndarray]:
    x = unit_rows(n)
    index = GalleryIndex(DIM, kind, **params)
    index.add(np.arange(n, dtype=np.int64) * 2, x)
    return index, x


KIND_PARAMS = {
    "flat": {},
    "hnsw": {},
    "ivf": {"ivf_min_train": 500},
    "ivfpq": {"ivfpq_min_train": 1000, "pq_m": 4, "pq_nbits": 6},
    "ivfpq-refine": {"ivf_min_train": 500},
}


# ----------------------------------------------------------------------------- snapshots
@pytest.mark.parametrize("kind", sorted(KIND_PARAMS))
def test_snapshot_round_trip(tmp_path, kind):
    index, x = filled(kind, **KIND_PARAMS[kind])
    index.remove(np.arange(0, 200, 2, dtype=np.int64))  # HNSW keeps these as tombstones
    path = save_snapshot(index, tmp_path / "g.fidx", seq=42, meta={"collection_id": 7})
    loaded, seq, meta = load_snapshot(path, dim=DIM)
    assert (seq, meta) == (42, {"collection_id": 7})
    assert loaded.kind == kind and loaded.backend_kind == index.backend_kind
    assert loaded.stats() == index.stats()
    np.testing.assert_array_equal(loaded.ids(), index.ids())
    expected, got = index.search(x[:50], 5), loaded.search(x[:50], 5)
    np.testing.assert_array_equal(got.ids, expected.ids)
    np.testing.assert_allclose(got.similarities, expected.similarities, atol=1e-6)
    assert [p.name for p in tmp_path.iterdir()] == ["g.fidx"]  # no temporary left behind


def test_empty_index_round_trip(tmp_path):
    save_snapshot(GalleryIndex(DIM, "auto"), tmp_path / "e.fidx", seq=0)
    loaded, seq, meta = load_snapshot(tmp_path / "e.fidx")
    assert (len(loaded), seq, meta, loaded.backend_kind) == (0, 0, {}, None)
    loaded.add([1], unit_rows(1))
    assert loaded.search(unit_rows(1), 1).ids[0, 0] == 1


def _damage(data: bytes, how: str) -> bytes:
    if how == "flipped byte":
        mid = len(data) // 2
        return data[:mid] + bytes([data[mid] ^ 0x40]) + data[mid + 1 :]
    if how == "truncated end":
        return data[:-100]
    if how == "truncated half":
        return data[: len(data) // 2]
    if how == "empty":
        return b""
    if how == "garbage":
        return b"not a snapshot at all" * 10
    if how == "header byte":
        return data[:20] + bytes([data[20] ^ 0x01]) + data[21:]
    raise AssertionError(how)


@pytest.mark.parametrize(
    "how",
    ["flipped byte", "truncated end", "truncated half", "empty", "garbage", "header byte"],
)
def test_damaged_snapshot_is_corrupt(tmp_path, how):
    index, _ = filled("hnsw", 300)
    path = save_snapshot(index, tmp_path / "g.fidx", seq=3)
    path.write_bytes(_damage(path.read_bytes(), how))
    with pytest.raises(CorruptSnapshotError) as info:
        load_snapshot(path)
    assert info.value.code == "corrupt_snapshot"


def test_wrong_dimension_is_corrupt(tmp_path):
    index, _ = filled("flat", 100)
    path = save_snapshot(index, tmp_path / "g.fidx", seq=1)
    with pytest.raises(CorruptSnapshotError, match="dimension"):
        load_snapshot(path, dim=DIM * 2)
    # A well-formed file whose header disagrees with the faiss data inside it.
    lying = replace(index.export_state(), dim=DIM * 2)
    save_snapshot(lying, tmp_path / "lying.fidx", seq=1)
    with pytest.raises(CorruptSnapshotError, match="dimension"):
        load_snapshot(tmp_path / "lying.fidx")


def test_folder_keeps_newest_snapshots(tmp_path):
    index, _ = filled("flat", 50)
    for seq in (5, 1, 30, 12, 7):
        save_to_folder(index, tmp_path, seq, prefix="c1", keep=3)
    save_to_folder(index, tmp_path, 2, prefix="c2", keep=3)  # another collection: untouched
    assert [p.name for p in list_snapshots(tmp_path, "c1")] == [
        "c1-00000000000000000030.fidx",
        "c1-00000000000000000012.fidx",
        "c1-00000000000000000007.fidx",
    ]
    assert latest_snapshot(tmp_path, "c1").name.endswith("30.fidx")
    assert latest_snapshot(tmp_path, "c2").name.endswith("2.fidx")
    assert latest_snapshot(tmp_path / "missing", "c1") is None


# ----------------------------------------------------------------------------- follower
class FakeLog:
    """An in-memory faces table + index_log, including late (out-of-order) commits."""

    def __init__(self, dim: int = DIM) -> None:
        self.dim = dim
        self.faces: dict[int, np.ndarray] = {}
        self.visible: list[LogEntry] = []
        self.pending: list[tuple[LogEntry, bool]] = []
        self.seq = 0
        self._rng = np.random.default_rng(99)

    def vector(self) -> np.ndarray:
        v = self._rng.standard_normal(self.dim).astype(np.float32)
        return v / np.linalg.norm(v)

    def add(self, face_id: int, commit: bool = True) -> LogEntry:
        self.seq += 1
        entry = LogEntry(self.seq, face_id, "add", self.vector())
        self._finish(entry, commit)
        return entry

    def remove(self, face_id: int, commit: bool = True) -> LogEntry:
        self.seq += 1
        entry = LogEntry(self.seq, face_id, "remove")
        self._finish(entry, commit)
        return entry

    def _finish(self, entry: LogEntry, commit: bool) -> None:
        if commit:
            self.commit(entry)
        else:
            self.pending.append((entry, True))

    def commit(self, entry: LogEntry) -> None:
        if entry.op == "add":
            self.faces[entry.face_id] = entry.embedding
        else:
            self.faces.pop(entry.face_id, None)
        self.visible.append(entry)

    # LogSource
    def all_embeddings(self, collection_id: int):
        ids = np.array(sorted(self.faces), dtype=np.int64)
        vectors = np.stack([self.faces[i] for i in ids]) if len(ids) else np.empty((0, self.dim))
        return ids, vectors.astype(np.float32), self.max_seq(collection_id)

    def log_since(self, collection_id: int, seq: int, *, embeddings_after: int | None = None):
        entries = sorted((e for e in self.visible if e.seq > seq), key=lambda e: e.seq)
        if embeddings_after is None:
            return entries
        return [  # as the database does: seen adds come without their vector
            replace(e, embedding=None) if e.op == "add" and e.seq <= embeddings_after else e
            for e in entries
        ]

    def max_seq(self, collection_id: int) -> int:
        return max((e.seq for e in self.visible), default=0)


def seeded_log(n: int = 300) -> FakeLog:
    log = FakeLog()
    for face in range(1, n + 1):
        log.add(face)
    for face in range(1, n + 1, 10):
        log.remove(face)
    return log


def test_fake_log_satisfies_protocol():
    assert isinstance(FakeLog(), LogSource)


def test_snapshot_plus_replay_equals_fresh_rebuild(tmp_path):
    log = seeded_log()
    first = IndexFollower(log, 1, DIM, tmp_path, kind="hnsw")
    report = first.start()
    assert report.snapshot is None and report.count == 270
    first.snapshot()
    for face in range(301, 341):  # changes after the snapshot
        log.add(face)
    for face in (2, 3, 305, 333):
        log.remove(face)

    restarted = IndexFollower(log, 1, DIM, tmp_path, kind="hnsw")
    report = restarted.start()
    assert report.snapshot is not None and report.replayed > 0
    fresh = IndexFollower(log, 1, DIM, None, kind="hnsw")
    fresh.start()
    np.testing.assert_array_equal(restarted.index.ids(), fresh.index.ids())
    np.testing.assert_array_equal(restarted.index.ids(), np.array(sorted(log.faces)))
    assert restarted.watermark == fresh.watermark == log.max_seq(1)
    probes = np.stack([log.faces[f] for f in (4, 5, 301)])
    np.testing.assert_array_equal(restarted.search(probes, 3).ids, fresh.search(probes, 3).ids)


def test_poll_applies_adds_and_removes_idempotently(tmp_path):
    log = seeded_log(50)
    follower = IndexFollower(log, 1, DIM, tmp_path, kind="flat", window=1000)
    follower.start()
    log.add(100)
    log.remove(4)
    result = follower.poll()
    assert (result.added, result.removed, result.watermark) == (1, 1, log.max_seq(1))
    again = follower.poll()  # re-reads the whole window: nothing changes
    assert (again.added, again.removed) == (0, 0)
    assert 100 in follower and 4 not in follower


def test_late_commit_behind_the_watermark_is_picked_up():
    log = seeded_log(20)
    follower = IndexFollower(log, 1, DIM, None, kind="flat", window=8)
    follower.start()
    late = log.add(500, commit=False)  # takes seq n but commits after seq n+1
    log.add(501)
    follower.poll()
    assert 501 in follower and 500 not in follower
    log.commit(late)
    follower.poll()
    assert 500 in follower


def test_remove_wins_over_an_add_replayed_later():
    log = seeded_log(20)
    follower = IndexFollower(log, 1, DIM, None, kind="flat", window=8)
    follower.start()
    late_add = log.add(600, commit=False)
    log.remove(600)  # visible first: removing an absent id is a no-op, but remembered
    follower.poll()
    log.commit(late_add)
    follower.poll()
    assert 600 not in follower


def test_rebuild_from_a_stale_read_keeps_known_removals():
    log = seeded_log(20)
    follower = IndexFollower(log, 1, DIM, None, kind="flat", window=2)
    follower.start()
    stale = log.all_embeddings(1)[:2]
    log.remove(7)
    for face in range(100, 110):  # push the removal far behind the re-read window
        log.add(face)
    follower.poll()
    # The faces were read before the delete committed, max_seq after it.
    log.all_embeddings = lambda cid: (*stale, log.max_seq(cid))
    follower.rebuild()
    assert 7 not in follower and 3 in follower


def test_bad_entries_are_skipped_not_fatal():
    log = seeded_log(10)
    follower = IndexFollower(log, 1, DIM, None, kind="flat")
    follower.start()
    log.seq += 1
    log.visible.append(LogEntry(log.seq, 700, "add", None))
    log.seq += 1
    log.visible.append(LogEntry(log.seq, 701, "add", np.ones(DIM + 1, np.float32)))
    log.add(702)
    result = follower.poll()
    assert (result.added, result.skipped) == (1, 2)
    assert 702 in follower and 700 not in follower


def test_corrupt_snapshot_is_discarded_and_rebuilt(tmp_path):
    log = seeded_log()
    follower = IndexFollower(log, 1, DIM, tmp_path, kind="flat")
    follower.start()
    path = follower.snapshot()
    path.write_bytes(path.read_bytes()[:-10])
    log.add(999)
    again = IndexFollower(log, 1, DIM, tmp_path, kind="flat")
    report = again.start()
    assert report.snapshot is None and report.discarded == (path,)
    assert not path.exists() and 999 in again
    np.testing.assert_array_equal(again.index.ids(), np.array(sorted(log.faces)))


def test_older_snapshot_is_used_when_newest_is_corrupt(tmp_path):
    log = seeded_log(40)
    follower = IndexFollower(log, 1, DIM, tmp_path, kind="flat")
    follower.start()
    older = follower.snapshot()
    log.add(41)
    follower.poll()
    newest = follower.snapshot()
    newest.write_bytes(b"junk")
    again = IndexFollower(log, 1, DIM, tmp_path, kind="flat")
    report = again.start()
    assert report.snapshot == older and report.discarded == (newest,)
    assert 41 in again


def test_rebuild_swaps_while_searches_continue():
    log = seeded_log(400)
    follower = IndexFollower(log, 1, DIM, None, kind="hnsw")
    follower.start()
    probes = np.stack([log.faces[f] for f in (2, 3, 5)])
    errors: list[BaseException] = []
    stop = threading.Event()

    def searcher():
        try:
            while not stop.is_set():
                assert (follower.search(probes, 5).ids >= 0).all()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=searcher)
    thread.start()
    try:
        for _ in range(3):
            log.add(log.seq + 1000)
            log.remove(2)
            assert follower.rebuild() == len(log.faces)
    finally:
        stop.set()
        thread.join(30)
    assert not errors, errors[0]
    np.testing.assert_array_equal(follower.index.ids(), np.array(sorted(log.faces)))
