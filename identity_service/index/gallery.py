"""GalleryIndex: k-NN over L2-normalised face embeddings keyed by int64 face ids.

Concurrency: writers (add, remove, rebuild) are serialised by a mutex; a writer takes the
exclusive side of a readers-writer lock only while it changes the faiss structure, and searches
take the shared side. A search therefore sees the gallery either before or after a change,
never half of one, and once ``remove`` returns no search can return the removed ids. Changes
that rebuild the whole structure (kind switch, IVF retrain, HNSW compaction) build the new one
off to the side while searches go on against the old one, then swap it in under the write lock.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

import faiss
import numpy as np

from ._rwlock import RWLock
from .backends import Backend, HNSWBackend, IndexParams, IVFBackend
from .errors import GalleryIndexError
from .factory import KINDS, build_backend, restore_backend
from .gpu import GpuMirror
from .refine import KIND as REFINE_KIND
from .refine import RefineBackend

REQUESTED_KINDS = ("auto", *KINDS)
# Structures that keep their exact vectors, so outgrowing the training retrains them in place.
RETRAINABLE = ("ivf", REFINE_KIND)
METRICS = ("ip", "cosine")

# The faiss-cpu 1.15 wheel sets distance_compute_blas_threshold to 128000, so an exact search of
# fewer queries than that never uses BLAS: 100 queries x 100k x 512-d took 1.5 s instead of
# 0.09 s on the bench machine. 20 is faiss' long-standing default (the SIMD scan wins below it;
# inner product has no BLAS round-off problem). Process-wide, like every faiss setting.
if faiss.cvar.distance_compute_blas_threshold > 20:
    faiss.cvar.distance_compute_blas_threshold = 20


class SearchResult(NamedTuple):
    """(similarities (n,k) float32 — cosine, -inf where empty; ids (n,k) int64 — -1 where empty)."""

    similarities: np.ndarray
    ids: np.ndarray


@dataclass
class IndexState:
    """Everything a snapshot needs to recreate a GalleryIndex."""

    dim: int
    kind: str
    backend_kind: str | None
    metric: str
    params: dict[str, Any]
    extra: dict[str, Any]
    count: int
    tombstones: np.ndarray
    faiss_bytes: np.ndarray | None  # uint8, from faiss.serialize_index; None when empty


@dataclass(frozen=True)
class IndexStats:
    kind: str
    backend_kind: str | None
    count: int
    stored: int
    tombstones: int
    needs_rebuild: bool


class GalleryIndex:
    def __init__(
        self, dim: int, kind: str = "auto", metric: str = "ip", gpu: bool = False, **params: Any
    ) -> None:
        if not isinstance(dim, int) or isinstance(dim, bool) or dim <= 0:
            raise GalleryIndexError(f"dim must be a positive int, got {dim!r}")
        if kind not in REQUESTED_KINDS:
            raise GalleryIndexError(
                f"unknown index kind {kind!r}; expected one of {REQUESTED_KINDS}"
            )
        # Vectors are unit length, so inner product is cosine similarity and ranks like L2.
        if metric not in METRICS:
            raise GalleryIndexError(
                f"metric {metric!r} unsupported: the gallery scores cosine similarity "
                f"(inner product of L2-normalised vectors); use one of {METRICS}"
            )
        if gpu and kind in ("hnsw", REFINE_KIND):
            raise GalleryIndexError(f"faiss has no GPU {kind} index; use kind flat, ivf or auto")
        self.dim = dim
        self.kind = kind
        self.metric = metric
        self.params = IndexParams.from_kwargs(**params)
        self.gpu = gpu
        self._gpu = GpuMirror() if gpu else None
        self._backend: Backend | None = None
        self._live: set[int] = set()
        self._version = 0  # bumped on every change: tells the GPU mirror to re-clone
        self._needs_rebuild = False
        self._mutex = threading.Lock()
        self._rw = RWLock()

    # ----------------------------------------------------------------- queries
    def __len__(self) -> int:
        return len(self._live)

    def __contains__(self, face_id: object) -> bool:
        try:
            return int(face_id) in self._live  # type: ignore[call-overload]
        except (TypeError, ValueError):
            return False

    def ids(self) -> np.ndarray:
        with self._rw.read():
            return np.array(sorted(self._live), dtype=np.int64)

    @property
    def backend_kind(self) -> str | None:
        """The structure in use now ("flat" for "auto" below the threshold, etc.)."""
        backend = self._backend
        return backend.kind if backend is not None else None

    @property
    def needs_rebuild(self) -> bool:
        """True when an IVF-PQ index outgrew its training: rebuild it from the original vectors."""
        return self._needs_rebuild

    def stats(self) -> IndexStats:
        with self._rw.read():
            backend = self._backend
            return IndexStats(
                kind=self.kind,
                backend_kind=backend.kind if backend else None,
                count=len(self._live),
                stored=backend.stored if backend else 0,
                tombstones=len(backend.tombstones()) if backend else 0,
                needs_rebuild=self._needs_rebuild,
            )

    def search(
        self,
        queries: np.ndarray,
        k: int,
        *,
        ef_search: int | None = None,
        nprobe: int | None = None,
    ) -> SearchResult:
        """The k most similar gallery faces per query row; a 1-D query counts as one row."""
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
            raise GalleryIndexError(f"k must be a positive int, got {k!r}")
        k = int(k)
        q = self._vectors(queries, "queries", allow_1d=True)
        with self._rw.read():
            backend = self._backend
            if backend is None or not self._live:
                sims = np.full((len(q), k), -np.inf, dtype=np.float32)
                return SearchResult(sims, np.full((len(q), k), -1, dtype=np.int64))
            if self._gpu is not None:
                sims, ids = self._gpu.search(backend, self._version, q, k, nprobe)
            else:
                sims, ids = backend.search(q, k, ef_search, nprobe)
        ids = np.asarray(ids, dtype=np.int64)
        sims = np.asarray(sims, dtype=np.float32)
        sims[ids < 0] = -np.inf
        return SearchResult(sims, ids)

    # ----------------------------------------------------------------- changes
    def add(self, ids: np.ndarray, vectors: np.ndarray) -> int:
        """Add faces; ids already present are skipped (a face's vector never changes).

        Returns how many were added.
        """
        ids, vectors = self._batch(ids, vectors)
        with self._mutex:
            fresh = np.fromiter((i not in self._live for i in ids.tolist()), bool, len(ids))
            ids, vectors = ids[fresh], vectors[fresh]
            if not len(ids):
                return 0
            n_after = len(self._live) + len(ids)
            backend = self._backend
            target = self._target_kind(n_after)
            rebuild = backend is None or backend.kind != target
            if isinstance(backend, IVFBackend | RefineBackend) and backend.outgrown(
                n_after, self.params.ivf_regrow_factor
            ):
                if backend.kind in RETRAINABLE:
                    rebuild = True
                else:
                    self._needs_rebuild = True  # PQ codes cannot be retrained from themselves
            if isinstance(backend, HNSWBackend) and not rebuild:
                rebuild = backend.has_tombstone(ids)
            if rebuild:
                old_ids, old_vectors = self._extract()
                self._swap_in(
                    target, np.concatenate([old_ids, ids]), np.concatenate([old_vectors, vectors])
                )
                return len(ids)
            assert backend is not None
            step = self.params.add_chunk
            for start in range(0, len(ids), step):
                # Chunks bound how long searches wait behind a large add.
                chunk_ids = ids[start : start + step]
                with self._rw.write():
                    backend.add(chunk_ids, vectors[start : start + step])
                    self._live.update(chunk_ids.tolist())
                    self._version += 1
            return len(ids)

    def remove(self, ids: np.ndarray) -> int:
        """Remove faces by id; missing ids are ignored. Returns how many were removed."""
        ids = self._ids(ids)
        with self._mutex:
            present = sorted({i for i in ids.tolist() if i in self._live})
            if not present or self._backend is None:
                return 0
            backend = self._backend
            with self._rw.write():
                backend.remove(np.asarray(present, dtype=np.int64))
                self._live.difference_update(present)
                self._version += 1
            target = self._target_kind(len(self._live))
            if backend.needs_compaction(self.params.tombstone_fraction) or target != backend.kind:
                self._swap_in(target, *self._extract())
            return len(present)

    def rebuild(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Replace the whole gallery with (ids, vectors), choosing and training the structure
        for that size; searches keep running on the old structure until the swap."""
        ids, vectors = self._batch(ids, vectors)
        with self._mutex:
            self._swap_in(self._target_kind(len(ids), fresh=True), ids, vectors)

    def retrain(self) -> None:
        """Rebuild from its own vectors (compacts HNSW, retrains IVF kinds). Not for IVF-PQ."""
        with self._mutex:
            self._swap_in(self._target_kind(len(self._live), fresh=True), *self._extract())

    # ----------------------------------------------------------------- snapshot support
    def export_state(self) -> IndexState:
        """A consistent copy for a snapshot (serialised in memory under the read lock)."""
        with self._rw.read():
            backend = self._backend
            return IndexState(
                dim=self.dim,
                kind=self.kind,
                backend_kind=backend.kind if backend else None,
                metric=self.metric,
                params=asdict(self.params),
                extra={
                    **(backend.extra() if backend else {}),
                    "needs_rebuild": self._needs_rebuild,
                },
                count=len(self._live),
                tombstones=backend.tombstones() if backend else np.empty(0, np.int64),
                faiss_bytes=faiss.serialize_index(backend.index) if backend else None,
            )

    @classmethod
    def from_state(cls, state: IndexState, gpu: bool = False) -> GalleryIndex:
        """Recreate an index from ``export_state`` output; GalleryIndexError if inconsistent."""
        index = cls(state.dim, state.kind, state.metric, gpu=gpu, **state.params)
        if state.backend_kind is not None and state.faiss_bytes is not None:
            try:
                raw = faiss.deserialize_index(state.faiss_bytes)
            except RuntimeError as exc:
                raise GalleryIndexError(f"faiss could not read the index: {exc}") from exc
            backend = restore_backend(
                state.backend_kind, state.dim, index.params, raw, state.extra, state.tombstones
            )
            live = backend.live_ids()
            if len(live) != state.count:
                raise GalleryIndexError(f"index holds {len(live)} ids, header says {state.count}")
            index._backend = backend
            index._live = set(live.tolist())
        elif state.count:
            raise GalleryIndexError(f"header says {state.count} ids but no index data is stored")
        index._needs_rebuild = bool(state.extra.get("needs_rebuild", False))
        return index

    # ----------------------------------------------------------------- internals
    def _target_kind(self, n: int, fresh: bool = False) -> str:
        current = None if fresh else self.backend_kind
        p = self.params
        if self.kind == "auto":
            if self._gpu is not None:
                return "ivf" if n >= p.auto_gpu_ivf_min else "flat"
            limit = max(1, p.auto_flat_max_cells // self.dim)
            # Hysteresis: once approximate, fall back to flat only well below the threshold.
            if current == REFINE_KIND:
                return REFINE_KIND if n >= limit // 2 else "flat"
            return REFINE_KIND if n >= limit else "flat"
        if self.kind in ("ivf", "ivfpq", REFINE_KIND):
            if current == self.kind:
                return self.kind
            minimum = p.ivfpq_min_train if self.kind == "ivfpq" else p.ivf_min_train
            return self.kind if n >= minimum else "flat"
        return self.kind

    def _extract(self) -> tuple[np.ndarray, np.ndarray]:
        with self._rw.read():
            if self._backend is None:
                return np.empty(0, np.int64), np.empty((0, self.dim), np.float32)
            return self._backend.extract()

    def _swap_in(self, kind: str, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Build a new backend without holding the read/write lock, then swap it in."""
        backend = build_backend(kind, self.dim, self.params, ids, vectors) if len(ids) else None
        with self._rw.write():
            self._backend = backend
            self._live = set(ids.tolist())
            self._version += 1
            self._needs_rebuild = False

    def _vectors(self, x: Any, what: str, allow_1d: bool = False) -> np.ndarray:
        arr = np.asarray(x)
        if arr.dtype.kind != "f":
            raise GalleryIndexError(f"{what} must be floating point, got dtype {arr.dtype}")
        if arr.ndim == 1 and allow_1d:
            arr = arr[None, :]
        if arr.ndim != 2 or arr.shape[1] != self.dim:
            raise GalleryIndexError(
                f"{what} must have shape (n, {self.dim}), got {arr.shape}",
                expected_dim=self.dim,
                shape=list(arr.shape),
            )
        arr = np.ascontiguousarray(arr, dtype=np.float32)
        if not np.isfinite(arr).all():
            raise GalleryIndexError(f"{what} contain NaN or infinite values")
        norms = np.linalg.norm(arr, axis=1)
        if (norms < 1e-6).any():
            raise GalleryIndexError(f"{what} contain a zero vector, which has no direction")
        if np.abs(norms - 1.0).max(initial=0.0) > 1e-4:
            arr = arr / norms[:, None]
        return arr

    @staticmethod
    def _ids(x: Any) -> np.ndarray:
        arr = np.asarray(x)
        if arr.ndim == 0:
            arr = arr[None]
        if arr.ndim != 1 or (arr.size and arr.dtype.kind not in "iu"):
            raise GalleryIndexError(f"ids must be a 1-D integer array, got {arr.dtype} {arr.shape}")
        if arr.size and (arr.min() < 0 or arr.max() > np.iinfo(np.int64).max):
            raise GalleryIndexError("ids must be in [0, 2**63)")
        return arr.astype(np.int64)

    def _batch(self, ids: Any, vectors: Any) -> tuple[np.ndarray, np.ndarray]:
        id_arr = self._ids(ids)
        empty = len(id_arr) == 0 and np.asarray(vectors).size == 0
        vec = np.empty((0, self.dim), np.float32) if empty else self._vectors(vectors, "vectors")
        if len(vec) != len(id_arr):
            raise GalleryIndexError(f"{len(id_arr)} ids but {len(vec)} vectors")
        if len(np.unique(id_arr)) != len(id_arr):
            raise GalleryIndexError("ids repeat within one batch")
        return id_arr, vec
