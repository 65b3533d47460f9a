"""The faiss structures behind a GalleryIndex, one class per kind.

Every backend scores by inner product over L2-normalised float32 vectors (= cosine similarity)
and labels results with int64 face ids. None is thread-safe on its own: GalleryIndex serialises
writers and keeps readers out while a backend changes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

import faiss
import numpy as np

from .errors import GalleryIndexError

_EMPTY_IDS = np.empty(0, dtype=np.int64)


@dataclass(frozen=True)
class IndexParams:
    """Tuning knobs; the defaults are argued in bench/README.md ("Gallery index")."""

    hnsw_m: int = 32
    hnsw_ef_construction: int = 200
    hnsw_ef_search: int = 256
    ivf_nlist: int = 0  # 0: ~4*sqrt(n), chosen when training
    ivf_nprobe: int = 0  # 0: derived from nlist
    pq_m: int = 0  # 0: dim // 4 sub-quantisers of pq_nbits each
    pq_nbits: int = 8
    # ivfpq-refine: candidates per wanted result scored exactly after the 4-bit PQ pass.
    refine_factor: int = 16
    # IVF kinds stay an exact flat index until there is enough data to train k-means on.
    ivf_min_train: int = 2_000
    ivfpq_min_train: int = 10_000
    # Retrain an IVF index once the gallery outgrows its training size by this factor.
    ivf_regrow_factor: float = 4.0
    # "auto" stays exact while one query scans at most this many floats (n * dim).
    auto_flat_max_cells: int = 100_000 * 128
    auto_gpu_ivf_min: int = 5_000_000
    # HNSW cannot delete in place: rebuild once this fraction of stored vectors are tombstones.
    tombstone_fraction: float = 0.2
    add_chunk: int = 16_384
    seed: int = 1234

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> IndexParams:
        known = {f.name: f.type for f in fields(cls)}
        unknown = sorted(set(kwargs) - set(known))
        if unknown:
            raise GalleryIndexError(
                f"unknown index parameter(s) {unknown}; known: {sorted(known)}", unknown=unknown
            )
        for name, value in kwargs.items():
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise GalleryIndexError(
                    f"index parameter {name} must be a number >= 0, got {value!r}"
                )
        return cls(**kwargs)


def default_nlist(n: int) -> int:
    # ~4*sqrt(n) lists, but at least 39 training points per centroid (faiss' own floor).
    return max(1, min(int(4 * math.sqrt(n)), n // 39))


def default_nprobe(nlist: int) -> int:
    # Recall first: an eighth of the lists. On face-like data recall@1 reached 0.99 at
    # nprobe ~nlist/10 for 100k and ~nlist/8 for 1M faces (bench/README.md).
    return min(nlist, max(32, nlist // 8))


def default_pq_m(dim: int) -> int:
    m = max(1, dim // 4)
    while dim % m:
        m -= 1
    return m


def faiss_search(index: Any, queries: np.ndarray, k: int, params: Any = None) -> Any:
    """``index.search`` as faiss defines it.

    ``faiss.contrib.torch_utils``, which pytorch-metric-learning imports, replaces
    ``Index.search`` process-wide with a wrapper that takes no ``params``; it keeps the
    original as ``search_numpy``.
    """
    search = getattr(index, "search_numpy", index.search)
    if params is None:
        return search(queries, k)
    return search(queries, k, params=params)


class Backend:
    kind: str
    index: Any  # the faiss index that gets serialised

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        self.index.add_with_ids(vectors, ids)

    def remove(self, ids: np.ndarray) -> None:
        self.index.remove_ids(ids)

    def search(
        self, queries: np.ndarray, k: int, ef_search: int | None, nprobe: int | None
    ) -> tuple[np.ndarray, np.ndarray]:
        return faiss_search(self.index, queries, k)

    def live_ids(self) -> np.ndarray:
        raise NotImplementedError

    def extract(self) -> tuple[np.ndarray, np.ndarray]:
        """All live (ids, vectors), for a rebuild into another kind."""
        raise NotImplementedError

    @property
    def stored(self) -> int:
        return int(self.index.ntotal)

    def tombstones(self) -> np.ndarray:
        return _EMPTY_IDS

    def needs_compaction(self, fraction: float) -> bool:
        return False

    def extra(self) -> dict[str, Any]:
        return {}

    def gpu_source(self) -> tuple[Any, np.ndarray | None]:
        """(cpu index to clone onto a GPU, row->id map or None when the index carries ids)."""
        raise GalleryIndexError(f"the {self.kind} index has no faiss GPU implementation")


class FlatBackend(Backend):
    """Exact search: IndexFlatIP wrapped in IndexIDMap2 (which can also reconstruct)."""

    kind = "flat"

    def __init__(self, dim: int, index: Any = None) -> None:
        self.index = index if index is not None else faiss.IndexIDMap2(faiss.IndexFlatIP(dim))

    def live_ids(self) -> np.ndarray:
        return faiss.vector_to_array(self.index.id_map).astype(np.int64, copy=False)

    def extract(self) -> tuple[np.ndarray, np.ndarray]:
        n = self.stored
        vectors = self.index.index.reconstruct_n(0, n) if n else np.empty((0, self.index.d))
        return self.live_ids(), np.asarray(vectors, dtype=np.float32)

    def gpu_source(self) -> tuple[Any, np.ndarray | None]:
        return self.index.index, self.live_ids()


class HNSWBackend(Backend):
    """IndexHNSWFlat (inner product) in IndexIDMap2. Removal leaves a tombstone that every
    search filters through an IDSelector, so results stay k live ids; compaction rebuilds."""

    kind = "hnsw"

    def __init__(
        self, dim: int, params: IndexParams, index: Any = None, tombstones: np.ndarray = _EMPTY_IDS
    ) -> None:
        if index is None:
            inner = faiss.IndexHNSWFlat(dim, params.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            inner.hnsw.efConstruction = params.hnsw_ef_construction
            index = faiss.IndexIDMap2(inner)
        self.index = index
        self.ef_search = params.hnsw_ef_search
        self._dead: set[int] = {int(t) for t in tombstones}
        self._selector: tuple[Any, Any] | None = None
        self._refresh_selector()

    def _refresh_selector(self) -> None:
        if not self._dead:
            self._selector = None
            return
        batch = faiss.IDSelectorBatch(self.tombstones())
        # IDSelectorNot holds a raw pointer to ``batch``: keep both alive together.
        self._selector = (faiss.IDSelectorNot(batch), batch)

    def has_tombstone(self, ids: np.ndarray) -> bool:
        return not self._dead.isdisjoint(ids.tolist())

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if self.has_tombstone(ids):
            raise GalleryIndexError("re-adding a removed id to HNSW needs a compaction first")
        self.index.add_with_ids(vectors, ids)

    def remove(self, ids: np.ndarray) -> None:
        self._dead.update(ids.tolist())
        self._refresh_selector()

    def search(
        self, queries: np.ndarray, k: int, ef_search: int | None, nprobe: int | None
    ) -> tuple[np.ndarray, np.ndarray]:
        # A fresh parameter object per call: IndexIDMap2 temporarily rewrites its selector.
        params = faiss.SearchParametersHNSW()
        params.efSearch = max(ef_search or self.ef_search, k)
        if self._selector is not None:
            params.sel = self._selector[0]
        return faiss_search(self.index, queries, k, params)

    def _all_ids(self) -> np.ndarray:
        return faiss.vector_to_array(self.index.id_map).astype(np.int64, copy=False)

    def live_ids(self) -> np.ndarray:
        ids = self._all_ids()
        return ids[~np.isin(ids, self.tombstones())] if self._dead else ids

    def extract(self) -> tuple[np.ndarray, np.ndarray]:
        ids = self._all_ids()
        n = len(ids)
        vectors = self.index.index.reconstruct_n(0, n) if n else np.empty((0, self.index.d))
        vectors = np.asarray(vectors, dtype=np.float32)
        if self._dead:
            keep = ~np.isin(ids, self.tombstones())
            ids, vectors = ids[keep], vectors[keep]
        return ids, vectors

    def tombstones(self) -> np.ndarray:
        return np.fromiter(sorted(self._dead), dtype=np.int64, count=len(self._dead))

    def needs_compaction(self, fraction: float) -> bool:
        return len(self._dead) > fraction * max(self.stored, 1)

    def extra(self) -> dict[str, Any]:
        return {"ef_search": self.ef_search}


class IVFBackend(Backend):
    """IndexIVFFlat or IndexIVFPQ (inner product) with ids stored in the inverted lists."""

    def __init__(self, kind: str, index: Any, trained_n: int, nprobe: int) -> None:
        self.kind = kind
        self.index = index
        self.trained_n = trained_n
        self.nprobe = nprobe

    @classmethod
    def trained(cls, kind: str, dim: int, params: IndexParams, vectors: np.ndarray) -> IVFBackend:
        n = len(vectors)
        nlist = min(params.ivf_nlist or default_nlist(n), max(1, n))
        quantizer = faiss.IndexFlatIP(dim)
        if kind == "ivf":
            index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
            sample_size = 64 * nlist
        else:
            m = params.pq_m or default_pq_m(dim)
            if dim % m:
                raise GalleryIndexError(f"pq_m={m} must divide the dimension {dim}")
            index = faiss.IndexIVFPQ(
                quantizer, dim, nlist, m, params.pq_nbits, faiss.METRIC_INNER_PRODUCT
            )
            # Each PQ sub-quantiser fits 2**nbits centroids: it needs more data than the lists.
            sample_size = max(64 * nlist, 64 * (1 << params.pq_nbits))
        index.cp.spherical = True  # centroids on the sphere suit inner-product search
        rng = np.random.default_rng(params.seed)
        if n > sample_size:
            sample = vectors[np.sort(rng.choice(n, size=sample_size, replace=False))]
        else:
            sample = vectors
        index.train(np.ascontiguousarray(sample))
        nprobe = min(params.ivf_nprobe or default_nprobe(nlist), nlist)
        return cls(kind, index, trained_n=n, nprobe=nprobe)

    def search(
        self, queries: np.ndarray, k: int, ef_search: int | None, nprobe: int | None
    ) -> tuple[np.ndarray, np.ndarray]:
        params = faiss.SearchParametersIVF()
        params.nprobe = min(nprobe or self.nprobe, self.index.nlist)
        return faiss_search(self.index, queries, k, params)

    def _lists(self) -> list[tuple[int, int]]:
        inv = self.index.invlists
        return [(i, inv.list_size(i)) for i in range(self.index.nlist) if inv.list_size(i)]

    def live_ids(self) -> np.ndarray:
        inv = self.index.invlists
        parts = [faiss.rev_swig_ptr(inv.get_ids(i), size).copy() for i, size in self._lists()]
        return np.concatenate(parts).astype(np.int64) if parts else _EMPTY_IDS

    def extract(self) -> tuple[np.ndarray, np.ndarray]:
        if self.kind != "ivf":
            raise GalleryIndexError(
                "an IVF-PQ index only holds compressed codes; rebuild it from the original "
                "vectors (GalleryIndex.rebuild)"
            )
        inv, dim = self.index.invlists, self.index.d
        ids, vecs = [], []
        for i, size in self._lists():
            ids.append(faiss.rev_swig_ptr(inv.get_ids(i), size).copy())
            codes = faiss.rev_swig_ptr(inv.get_codes(i), size * inv.code_size).copy()
            vecs.append(codes.view(np.float32).reshape(size, dim))
        if not ids:
            return _EMPTY_IDS, np.empty((0, dim), dtype=np.float32)
        return np.concatenate(ids).astype(np.int64), np.concatenate(vecs)

    def outgrown(self, n: int, factor: float) -> bool:
        return n > factor * max(self.trained_n, 1)

    def extra(self) -> dict[str, Any]:
        return {"trained_n": self.trained_n, "nprobe": self.nprobe, "nlist": self.index.nlist}

    def gpu_source(self) -> tuple[Any, np.ndarray | None]:
        return self.index, None
