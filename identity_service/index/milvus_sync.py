"""Keep a Milvus collection in step with the database's ``index_log``, as IndexFollower keeps a
FAISS index: the same calls (start, poll, search, rebuild, snapshot), one shared index.

Every node of a deployment searches the same Milvus collection, so only one process at a time
applies the log to it: the applier lock (``store/applier_lock.py``: a Postgres advisory lock,
or an flock beside a SQLite file). Under the lock a process reads how far the collection got
(its state row: the physical collection and the last sequence number applied), reads the log
after it in pages of ``chunk`` entries, applies each page in sequence order and then records
the page's last sequence number. Writes are idempotent: an add is an upsert keyed by face id
and a remove deletes by face id. A process killed anywhere leaves the record at or behind what
was applied, and the next holder replays from there, which changes nothing that was already
applied: every face is in Milvus exactly once. Face ids are never reused and a face's removal
follows its add in the log, and an add whose face is gone from the database comes without its
vector, so replaying in order never brings a deleted face back.

Within a collection, log rows become visible in sequence order (writers lock the collection row
first, see ``store/repository.py``), so the recorded sequence number is an exact watermark.

The state row is checked when a process starts: missing, written for another collection (an id
SQLite reused), ahead of the database (a restore from an older backup), or an alias pointing
elsewhere all mean the collection is rebuilt from the database. A rebuild fills a new physical
collection from ``all_embeddings`` without the lock, catches it up with the log under the lock
and moves the alias: searches go on against the old collection until then.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any, Protocol

import numpy as np

from .errors import GalleryIndexError
from .gallery import IndexStats, SearchResult
from .milvus import MilvusCollection, RemoteState, VectorStoreUnavailableError
from .sync import LogEntry, PollResult, StartReport, usable_embedding

log = logging.getLogger(__name__)

BACKEND_KIND = "milvus-hnsw"


class PagedLogSource(Protocol):
    def all_embeddings(self, collection_id: int) -> tuple[np.ndarray, np.ndarray, int]: ...

    def log_since(
        self, collection_id: int, seq: int, limit: int | None = None
    ) -> list[LogEntry]: ...

    def max_seq(self, collection_id: int) -> int: ...


class Lock(Protocol):
    def hold(self, timeout: float) -> contextlib.AbstractContextManager[bool]: ...


class MilvusIndexView:
    """What ``follower.index`` answers on Milvus (a GalleryIndex on FAISS)."""

    kind = "milvus"
    backend_kind = BACKEND_KIND
    needs_rebuild = False

    def __init__(self, follower: MilvusFollower) -> None:
        self._follower = follower

    def __len__(self) -> int:
        return len(self._follower)

    def __contains__(self, face_id: object) -> bool:
        return face_id in self._follower

    def ids(self) -> np.ndarray:
        return np.unique(self._follower.remote.ids())

    def stats(self) -> IndexStats:
        count = len(self._follower)
        return IndexStats("milvus", BACKEND_KIND, count, count, 0, False)


class MilvusFollower:
    def __init__(
        self,
        source: PagedLogSource,
        collection_id: int,
        dim: int,
        remote: MilvusCollection,
        lock: Lock,
        *,
        chunk: int = 5_000,
        wait_s: float = 10.0,
        start_wait_s: float = 1_800.0,
        drop_grace_s: float = 5.0,
    ) -> None:
        self.source = source
        self.collection_id = collection_id
        self.dim = dim
        self.remote = remote
        self.lock = lock
        self.chunk = chunk
        self.wait_s = wait_s
        self.start_wait_s = start_wait_s
        self.drop_grace_s = drop_grace_s
        self._watermark = 0
        self._count = 0
        self._started = False
        self._mutex = threading.Lock()  # one start/poll/rebuild of this object at a time

    # ----------------------------------------------------------------- state
    @property
    def index(self) -> MilvusIndexView:
        if not self._started:
            raise GalleryIndexError("the index follower has not been started")
        return MilvusIndexView(self)

    @property
    def watermark(self) -> int:
        return self._watermark

    def __len__(self) -> int:
        return self._count

    def __contains__(self, face_id: object) -> bool:
        try:
            return self.remote.contains(int(face_id))  # type: ignore[call-overload]
        except (TypeError, ValueError):
            return False

    def search(
        self, queries: np.ndarray, k: int, *, ef_search: int | None = None, **_: Any
    ) -> SearchResult:
        """The k most similar faces per query row, as GalleryIndex.search answers."""
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
            raise GalleryIndexError(f"k must be a positive int, got {k!r}")
        q = unit_queries(queries, self.dim)
        ef = ef_search or self.remote.config.ef
        try:
            sims, ids = self.remote.search(q, int(k), ef)
        except VectorStoreUnavailableError:
            if not self._recover():
                raise
            sims, ids = self.remote.search(q, int(k), ef)
        if self._count and (ids[:, 0] < 0).all():
            # Nothing at all from a gallery that is not empty: the alias was moving (a
            # rebuild elsewhere). Ask once more rather than answer "nobody".
            time.sleep(0.05)
            sims, ids = self.remote.search(q, int(k), ef)
        return SearchResult(sims, ids)

    # ----------------------------------------------------------------- lifecycle
    def start(self) -> StartReport:
        with self._mutex, self._locked(self.start_wait_s) as held:
            if not held:
                raise self._busy()
            self.remote.ensure_state_collection()
            physical, seq, _ = self._ensure_locked()
            result = self._apply_locked(physical, seq)
            self.remote.barrier()  # searches see what earlier processes applied
            self._started = True
        self._count = self.remote.count()
        return StartReport(
            snapshot=None,
            discarded=(),
            replayed=result.added + result.removed,
            watermark=self._watermark,
            count=self._count,
        )

    def poll(self) -> PollResult:
        """Apply what was committed since the last poll, unless another process is applying
        it: then wait for it (``wait_s`` at most) and apply what is left."""
        if self.source.max_seq(self.collection_id) <= self._watermark:
            return PollResult(0, 0, 0, self._watermark, False)
        with self._mutex, self._locked(self.wait_s) as held:
            if not held:  # another process is applying: serve what it got so far
                state = self.remote.state()
                if state is not None and state.owner == self.remote.owner:
                    self._watermark = max(self._watermark, state.seq)
                self.remote.barrier()
                self._count = self.remote.count()
                return PollResult(0, 0, 0, self._watermark, False)
            result = self._apply_checked()
            if not result.added + result.removed:  # another process had applied it
                self.remote.barrier()
        self._count = self.remote.count()
        return result

    def snapshot(self) -> str:
        """Milvus keeps its own data: make it durable (flush) and say where it is."""
        physical = self.remote.physical() or self.remote.alias
        self.remote.flush(physical)
        return f"milvus:{self.remote.config.display()}/{physical}@{self._watermark}"

    def rebuild(self) -> int:
        """Rebuild from the database into a new physical collection and move the alias to it;
        searches go on against the old one meanwhile. Returns the new size."""
        physical, seq = self._fill()  # the slow part, without the lock
        with self._mutex, self._locked(self.start_wait_s) as held:
            if not held:
                self.remote.drop_physical(physical)
                raise self._busy()
            self.remote.ensure_state_collection()
            old = self.remote.physical()
            self._apply_locked(physical, seq, via_alias=False)  # not searched yet
            self.remote.point_alias(physical)
            self.remote.write_state(physical, self._watermark)
            self.remote.barrier()
            if old is not None and old != physical:
                self._drop_later(old)
            self._started = True
        self._count = self.remote.count()
        return self._count

    def drop(self) -> None:
        """Remove the collection from Milvus (its faceid collection was deleted)."""
        with self._mutex, self._locked(self.start_wait_s) as held:
            if not held:
                raise self._busy()
            self.remote.drop_all()
            self._count = 0

    # ----------------------------------------------------------------- internals
    @contextlib.contextmanager
    def _locked(self, timeout: float) -> Iterator[bool]:
        with self.lock.hold(timeout) as held:
            yield held

    def _busy(self) -> VectorStoreUnavailableError:
        return VectorStoreUnavailableError(
            f"another process has been applying collection {self.collection_id}'s log to "
            f"Milvus for too long ({self.remote.alias})",
            vector_store=self.remote.config.display(),
        )

    def _why_invalid(self, state: RemoteState | None, top: int, alias: bool = True) -> str | None:
        if state is None:
            return "it has no state row"
        if state.owner != self.remote.owner:
            return f"it was built for {state.owner!r}"
        if state.seq > top:
            return f"it is at log position {state.seq}, ahead of the database's {top}"
        if alias and not self.remote.points_at(state.physical):
            return "its alias does not point at the collection its state names"
        return None

    def _ensure_locked(self) -> tuple[str, int, bool]:
        """(physical collection, its sequence number, rebuilt): the state when it is sound,
        else a rebuild from the database (the lock is held)."""
        state = self.remote.state()
        why = self._why_invalid(state, self.source.max_seq(self.collection_id))
        if why is None:
            assert state is not None
            return state.physical, state.seq, False
        log.warning("rebuilding Milvus collection %s from the database: %s", self.remote.alias, why)
        physical, seq = self._fill()
        self.remote.point_alias(physical)
        self.remote.write_state(physical, seq)
        # The old one, and any a process killed while filling left behind.
        for stale in set(self.remote.physicals()) - {physical}:
            self._drop_later(stale)
        return physical, seq, True

    def _drop_later(self, physical: str) -> None:
        """Drop a collection the alias has left, once searches stop reaching it: a Milvus
        proxy can resolve the alias to the old collection for a moment after it moved (a
        search there then answered nothing, measured on Milvus 2.3)."""

        def drop() -> None:
            try:
                self.remote.drop_physical(physical)
            except VectorStoreUnavailableError as exc:  # dropped at the next rebuild
                log.warning("could not drop %s: %s", physical, exc)

        timer = threading.Timer(self.drop_grace_s, drop)
        timer.daemon = True
        timer.start()

    def _apply_checked(self) -> PollResult:
        """A poll's work under the lock: the state row is read (another process may have
        moved it on); the alias is checked only when applying fails."""
        state = self.remote.state()
        top = self.source.max_seq(self.collection_id)
        if state is None or self._why_invalid(state, top, alias=False):
            physical, seq, _ = self._ensure_locked()
            return self._apply_locked(physical, seq)
        try:
            return self._apply_locked(state.physical, state.seq)
        except VectorStoreUnavailableError:
            if self.remote.points_at(state.physical):
                raise  # Milvus failed, the collection is there
            physical, seq, _ = self._ensure_locked()  # dropped under us: rebuild
            return self._apply_locked(physical, seq)

    def _recover(self) -> bool:
        """After a failed search: rebuild when the collection is gone, else False."""
        if self.remote.physical() is not None:
            return False
        with self._mutex, self._locked(self.start_wait_s) as held:
            if not held:
                return False
            self.remote.ensure_state_collection()
            physical, seq, _ = self._ensure_locked()
            self._apply_locked(physical, seq)
            self.remote.barrier()
        self._count = self.remote.count()
        return True

    def _fill(self) -> tuple[str, int]:
        ids, vectors, seq = self.source.all_embeddings(self.collection_id)
        ids = np.asarray(ids, dtype=np.int64)
        vectors = np.asarray(vectors, dtype=np.float32).reshape(len(ids), self.dim)
        norms = np.linalg.norm(vectors, axis=1)
        good = np.isfinite(norms) & (norms > 1e-6)
        if not good.all():
            log.error("skipping %d stored faces with unusable embeddings", int((~good).sum()))
        physical = self.remote.create_physical()
        try:
            self.remote.insert(physical, ids[good], vectors[good] / norms[good, None])
            self.remote.flush(physical)
        except BaseException:
            with contextlib.suppress(VectorStoreUnavailableError):
                self.remote.drop_physical(physical)
            raise
        log.info("filled %s with %d faces at seq %d", physical, int(good.sum()), seq)
        return physical, int(seq)

    def _apply_locked(self, physical: str, since: int, *, via_alias: bool = True) -> PollResult:
        """Apply the log after ``since`` to ``physical`` page by page, recording each page.
        Writes go through the alias (which names ``physical`` under the lock) so that this
        process' Session searches see them, except into a collection not yet aliased."""
        target = self.remote.alias if via_alias else physical
        added = removed = skipped = 0
        seq = since
        while True:
            entries = self.source.log_since(self.collection_id, seq, limit=self.chunk)
            if not entries:
                break
            adds: dict[int, np.ndarray] = {}
            removes: set[int] = set()
            for entry in entries:
                face = int(entry.face_id)
                if entry.op == "remove":
                    removes.add(face)
                    adds.pop(face, None)
                elif entry.op == "add" and (vector := self._usable(entry)) is not None:
                    adds[face] = vector
                elif entry.op == "add":
                    skipped += 1
                # other ops (a collection's settings, an identity's name) carry no face
            if adds:
                ids = np.fromiter(adds, dtype=np.int64, count=len(adds))
                self.remote.upsert(target, ids, np.stack(list(adds.values())))
            if removes:
                self.remote.delete(target, sorted(removes))
            seq = int(entries[-1].seq)
            self.remote.write_state(physical, seq)
            added, removed = added + len(adds), removed + len(removes)
            if len(entries) < self.chunk:
                break
        if removed and via_alias:
            # Milvus (2.3, measured) shows a deletion to Session searches only from its next
            # time tick, even to the process that made it; one Strong read waits for that, so
            # once this poll returns no search here returns the face (other nodes: within
            # that tick, as FAISS nodes within their poll interval).
            self.remote.count("Strong")
        self._watermark = max(seq, since)
        return PollResult(added, removed, skipped, self._watermark, False)

    def _usable(self, entry: LogEntry) -> np.ndarray | None:
        vector = usable_embedding(entry, self.dim)
        norm = 0.0 if vector is None else float(np.linalg.norm(vector))
        if vector is None or norm < 1e-6:
            return None
        return vector / norm


def unit_queries(x: Any, dim: int) -> np.ndarray:
    """Queries as GalleryIndex takes them: (n, dim) or (dim,) floats, finite and non-zero,
    L2-normalised; anything else is a GalleryIndexError."""
    arr = np.asarray(x)
    if arr.dtype.kind != "f":
        raise GalleryIndexError(f"queries must be floating point, got dtype {arr.dtype}")
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != dim:
        raise GalleryIndexError(
            f"queries must have shape (n, {dim}), got {arr.shape}",
            expected_dim=dim,
            shape=list(arr.shape),
        )
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    if not np.isfinite(arr).all():
        raise GalleryIndexError("queries contain NaN or infinite values")
    norms = np.linalg.norm(arr, axis=1)
    if (norms < 1e-6).any():
        raise GalleryIndexError("queries contain a zero vector, which has no direction")
    return arr / norms[:, None]
