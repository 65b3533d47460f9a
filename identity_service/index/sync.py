"""Keep a GalleryIndex in step with the database's ``index_log`` outbox.

The database is the truth; the index is derived. A follower starts from the newest snapshot
that loads (or, failing that, from every stored embedding), replays the log after the snapshot's
watermark, then polls for new entries.

Postgres sequence values are taken at insert but become visible at commit, so entry 10 can
appear after entry 11 was read. Each poll therefore re-reads ``window`` sequence numbers behind
the watermark and applies everything idempotently: adding a present id and removing a missing
id are no-ops, and a removal wins over any add of the same face replayed later (face ids are
never reused), which the follower guarantees by remembering the last ``remember_removed``
removals (they also cover a rebuild whose ``all_embeddings`` read raced with a delete).

The log also carries changes that are not faces (ops ``config`` and ``identity``: a collection's
settings or an identity's name changed). The follower hands them, and the faces it adds and
removes, to its :class:`LogObserver`, which keeps what a query node caches beside the index in
step with it: owners are told of a face before the index holds it, and of a removal after.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

from .errors import CorruptSnapshotError, GalleryIndexError
from .gallery import GalleryIndex, SearchResult
from .snapshot import list_snapshots, load_snapshot, save_to_folder

log = logging.getLogger(__name__)

CHANGE_OPS = frozenset({"config", "identity"})  # log rows that are no face


@dataclass(frozen=True)
class LogEntry:
    """One ``index_log`` row. ``embedding`` is required for 'add' and ignored for 'remove';
    ``identity_id`` is the owner of an added face (when the source knows it)."""

    seq: int
    face_id: int
    op: Literal["add", "remove", "config", "identity"]
    embedding: np.ndarray | None = None
    identity_id: int | None = None


class LogObserver(Protocol):
    """Told what a poll applies, in an order that keeps a cache of face owners exact."""

    def adding(self, faces: Sequence[tuple[int, int | None]]) -> None:
        """(face id, identity id or None) of faces about to enter the index."""
        ...

    def removed(self, face_ids: Sequence[int]) -> None:
        """Faces that have left the index (some may never have been in it)."""
        ...

    def changed(self, entries: Sequence[LogEntry]) -> None:
        """New ``config`` and ``identity`` entries, after the faces were applied."""
        ...


@runtime_checkable
class LogSource(Protocol):
    def all_embeddings(self, collection_id: int) -> tuple[np.ndarray, np.ndarray, int]:
        """(ids int64 (n,), vectors float32 (n, dim), max_seq covered)."""
        ...

    def log_since(
        self, collection_id: int, seq: int, *, embeddings_after: int | None = None
    ) -> list[LogEntry]:
        """Entries with seq > ``seq``, ordered by seq; adds at or below ``embeddings_after``
        may come without their embedding (the caller has seen them)."""
        ...

    def max_seq(self, collection_id: int) -> int: ...


@dataclass(frozen=True)
class StartReport:
    snapshot: Path | None  # the snapshot loaded, None when rebuilt from the database
    discarded: tuple[Path, ...]  # snapshots that failed to load and were deleted
    replayed: int  # log entries applied after the snapshot / rebuild
    watermark: int
    count: int


@dataclass(frozen=True)
class PollResult:
    added: int
    removed: int
    skipped: int  # malformed entries (add without a usable embedding), logged
    watermark: int
    needs_rebuild: bool


class IndexFollower:
    def __init__(
        self,
        source: LogSource,
        collection_id: int,
        dim: int,
        snapshot_dir: str | os.PathLike[str] | None,
        kind: str = "auto",
        *,
        gpu: bool = False,
        window: int = 256,
        keep_snapshots: int = 3,
        remember_removed: int = 100_000,
        observer: LogObserver | None = None,
        **params: Any,
    ) -> None:
        self.source = source
        self.collection_id = collection_id
        self.dim = dim
        self.snapshot_dir = Path(snapshot_dir) if snapshot_dir is not None else None
        self.kind = kind
        self.gpu = gpu
        self.window = window
        self.keep_snapshots = keep_snapshots
        self.remember_removed = remember_removed
        self._params = params
        self.observer = observer
        GalleryIndex(dim, kind, gpu=gpu, **params)  # fail fast on a bad configuration
        self._index: GalleryIndex | None = None
        self._watermark = 0
        self._removed: dict[int, int] = {}  # face id -> seq of its removal (recent ones)
        self._changes_seen: set[int] = set()  # seqs of change entries inside the window
        self._loaded_path: Path | None = None
        self._lock = threading.Lock()  # serialises start/poll/snapshot/rebuild

    # ----------------------------------------------------------------- state
    @property
    def index(self) -> GalleryIndex:
        index = self._index
        if index is None:
            raise GalleryIndexError("the index follower has not been started")
        return index

    @property
    def watermark(self) -> int:
        return self._watermark

    @property
    def snapshot_prefix(self) -> str:
        return f"collection-{self.collection_id}"

    def __len__(self) -> int:
        return len(self._index) if self._index is not None else 0

    def __contains__(self, face_id: object) -> bool:
        return self._index is not None and face_id in self._index

    def search(self, queries: np.ndarray, k: int, **kwargs: Any) -> SearchResult:
        return self.index.search(queries, k, **kwargs)

    # ----------------------------------------------------------------- lifecycle
    def start(self) -> StartReport:
        with self._lock:
            loaded, discarded = self._load_newest_snapshot()
            if loaded is None:
                index, self._watermark = self._build_from_source()
                self._removed = {}
            else:
                index = loaded
            self._index = index
            result = self._apply_locked(index)
            return StartReport(
                snapshot=self._loaded_path if loaded is not None else None,
                discarded=tuple(discarded),
                replayed=result.added + result.removed,
                watermark=self._watermark,
                count=len(index),
            )

    def poll(self, *, quick: bool = False) -> PollResult:
        """Apply the log entries committed since the last poll (and re-check the window).
        ``quick``: first ask only for the log's last seq, and stop there when it has not moved
        (writers lock the collection, so nothing commits behind the watermark; a full poll now
        and then re-reads the window all the same)."""
        with self._lock:
            index = self.index
            if quick and self.source.max_seq(self.collection_id) <= self._watermark:
                return PollResult(0, 0, 0, self._watermark, index.needs_rebuild)
            return self._apply_locked(index)

    def snapshot(self) -> Path:
        """Write a snapshot of the current index and watermark into ``snapshot_dir``."""
        if self.snapshot_dir is None:
            raise GalleryIndexError("this follower has no snapshot_dir")
        with self._lock:
            # Export under the lock (index and watermark agree); write the file outside it.
            state = self.index.export_state()
            seq = self._watermark
            meta = {
                "collection_id": self.collection_id,
                "removed": [[f, s] for f, s in self._removed.items()],
                "window": self.window,
            }
        return save_to_folder(
            state,
            self.snapshot_dir,
            seq,
            meta,
            prefix=self.snapshot_prefix,
            keep=self.keep_snapshots,
        )

    def rebuild(self) -> int:
        """Rebuild from the database into a fresh index and swap it in; searches continue
        against the old index meanwhile. Returns the new index size."""
        fresh, built_at = self._build_from_source()  # the slow part, without the lock
        with self._lock:
            # Catch the new index up with everything after its source snapshot, then swap.
            self._remove_known(fresh)
            started = self._index is not None
            self._watermark = min(self._watermark, built_at) if started else built_at
            self._apply_locked(fresh)
            self._index = fresh
            return len(fresh)

    # ----------------------------------------------------------------- internals
    def _new_index(self) -> GalleryIndex:
        return GalleryIndex(self.dim, self.kind, gpu=self.gpu, **self._params)

    def _build_from_source(self) -> tuple[GalleryIndex, int]:
        ids, vectors, max_seq = self.source.all_embeddings(self.collection_id)
        index = self._new_index()
        ids = np.asarray(ids, dtype=np.int64)
        if len(ids):
            index.rebuild(ids, np.asarray(vectors, dtype=np.float32))
        log.info(
            "built %s index of %d faces for collection %d at seq %d",
            index.backend_kind,
            len(index),
            self.collection_id,
            max_seq,
        )
        return index, int(max_seq)

    def _load_newest_snapshot(self) -> tuple[GalleryIndex | None, list[Path]]:
        discarded: list[Path] = []
        self._loaded_path = None
        if self.snapshot_dir is None:
            return None, discarded
        for path in list_snapshots(self.snapshot_dir, self.snapshot_prefix):
            try:
                index, seq, meta = load_snapshot(path, dim=self.dim, gpu=self.gpu)
                if meta.get("collection_id") != self.collection_id:
                    raise CorruptSnapshotError(f"snapshot {path} belongs to another collection")
            except (CorruptSnapshotError, OSError) as exc:
                log.warning("discarding snapshot %s: %s", path, exc)
                path.unlink(missing_ok=True)
                discarded.append(path)
                continue
            if index.kind != self.kind:
                log.info(
                    "snapshot %s is a %s index, configured %s: rebuilding",
                    path,
                    index.kind,
                    self.kind,
                )
                return None, discarded
            self._watermark = seq
            self._removed = {int(f): int(s) for f, s in meta.get("removed", [])}
            self._loaded_path = path
            log.info("loaded snapshot %s (%d faces, seq %d)", path, len(index), seq)
            return index, discarded
        return None, discarded

    def _remove_known(self, index: GalleryIndex) -> None:
        if self._removed:
            index.remove(np.fromiter(self._removed, dtype=np.int64, count=len(self._removed)))

    def _apply_locked(self, index: GalleryIndex) -> PollResult:
        # The window behind the watermark comes without embeddings: almost every entry in it
        # was applied already, and reading 256 vectors per poll cost more than the search.
        entries = self.source.log_since(
            self.collection_id,
            max(0, self._watermark - self.window),
            embeddings_after=self._watermark,
        )
        entries = self._fill_late_adds(entries, index)
        removes: dict[int, int] = {}
        adds: dict[int, tuple[np.ndarray, int | None]] = {}
        changes: list[LogEntry] = []
        skipped = 0
        top = self._watermark
        for entry in entries:
            top = max(top, int(entry.seq))
            face = int(entry.face_id)
            if entry.op == "remove":
                removes[face] = int(entry.seq)
            elif entry.op == "add":
                if entry.embedding is None and entry.seq <= self._watermark:
                    continue  # applied (or removed) on an earlier poll: read without its vector
                vector = usable_embedding(entry, self.dim)
                if vector is None:
                    skipped += 1
                elif face not in adds:
                    adds[face] = (vector, getattr(entry, "identity_id", None))
            elif entry.op in CHANGE_OPS:
                if int(entry.seq) not in self._changes_seen:
                    changes.append(entry)
            else:
                log.error("index_log entry %s has unknown op %r; skipped", entry.seq, entry.op)
                skipped += 1
        self._removed.update(removes)
        fresh = [f for f in adds if f not in self._removed and f not in index]
        removed = index.remove(np.fromiter(removes, dtype=np.int64, count=len(removes)))
        added = 0
        if self.observer is not None and removes:
            self.observer.removed(list(removes))
        if fresh:
            if self.observer is not None:
                self.observer.adding([(f, adds[f][1]) for f in fresh])
            vectors = np.stack([adds[f][0] for f in fresh])
            added = index.add(np.asarray(fresh, dtype=np.int64), vectors)
        self._watermark = top
        self._note_changes(changes, top)
        if len(self._removed) > self.remember_removed:
            newest = sorted(self._removed.items(), key=lambda item: item[1])
            self._removed = dict(newest[-self.remember_removed :])
        return PollResult(added, removed, skipped, top, index.needs_rebuild)

    def _note_changes(self, changes: list[LogEntry], top: int) -> None:
        """Hand new change entries to the observer once (the window re-reads them)."""
        self._changes_seen = {q for q in self._changes_seen if q > top - self.window}
        if changes and self.observer is not None:
            self.observer.changed(changes)
        self._changes_seen.update(int(e.seq) for e in changes)

    def _fill_late_adds(self, entries: list[LogEntry], index: GalleryIndex) -> list[LogEntry]:
        """Re-read, with embeddings, from the first add behind the watermark that the index
        has not seen: a transaction that committed after the last poll read past its seq."""
        late = [
            e.seq
            for e in entries
            if e.op == "add"
            and e.embedding is None
            and e.seq <= self._watermark
            and e.face_id not in index
            and int(e.face_id) not in self._removed
        ]
        if not late:
            return entries
        first = min(late)
        refetched = self.source.log_since(self.collection_id, first - 1)
        return [e for e in entries if e.seq < first] + refetched


def usable_embedding(entry: LogEntry, dim: int) -> np.ndarray | None:
    """An add entry's vector as float32, or None: deleted since (no embedding; its 'remove'
    follows in the log), or unusable (wrong shape, not finite, zero), which is logged."""
    emb = entry.embedding
    if emb is None:
        # Expected, and seen again on every re-read of the window: a debug line at most.
        log.debug("index_log add %s (face %s) has no embedding", entry.seq, entry.face_id)
        return None
    vector = np.asarray(emb, dtype=np.float32).reshape(-1)
    if vector.shape != (dim,) or not np.isfinite(vector).all() or not vector.any():
        log.error(
            "index_log add %s (face %s) has an unusable embedding of shape %s; skipped",
            entry.seq,
            entry.face_id,
            np.shape(emb),
        )
        return None
    return vector
