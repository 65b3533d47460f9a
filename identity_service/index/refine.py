"""IVF over 4-bit PQ codes scanned with SIMD (faiss "fast-scan"), re-ranked on exact vectors.

The structure for large galleries on CPU: the fast-scan pass reads 4 bits per dimension (64
bytes per 128-d face instead of 512) with SIMD table lookups, so probing an eighth of the lists
of a 1M gallery costs less than an exact scan of 100k; the ``k * refine_factor`` best
candidates are then scored exactly, so the ranking and the similarities returned are exact
ones. Memory is the exact vectors plus the codes (~1.13x flat). Measured against flat, IVF
and HNSW in bench/README.md ("Gallery index at scale").

Wider embeddings (the 320-d default, say) choose their candidates in ``CODE_DIM`` dimensions:
the gallery's own principal directions, an orthonormal projection fitted on the training
sample with the mean kept (uncentred), so inner products are approximated without an offset
that would differ from face to face. It is trained with the index and stored in its snapshot;
re-ranking stays exact on the full vectors, so only which candidates are found can change,
and that is what recall measures (docs/benchmarks.md).
"""

from __future__ import annotations

from typing import Any

import faiss
import numpy as np

from .backends import Backend
from .errors import GalleryIndexError

KIND = "ivfpq-refine"
# Dimensions of the candidate stage: the fast-scan pass costs in proportion to them, and 128 is
# what meets 2 ms at recall@1 0.99 on a 1M gallery with 2 CPUs.
CODE_DIM = 128


def _projection(sample: np.ndarray, code_dim: int) -> np.ndarray:
    """(code_dim, dim): the top eigenvectors of the sample's uncentred second moment."""
    x = np.asarray(sample, dtype=np.float64)
    _, vectors = np.linalg.eigh(x.T @ x / max(len(x), 1))
    return np.ascontiguousarray(vectors[:, ::-1][:, :code_dim].T, dtype=np.float32)


def _fast_scan_m(dim: int) -> int:
    """One 4-bit sub-quantiser per dimension.

    Two dimensions per sub-quantiser halve the scan but, on the 1M face gallery of
    bench/index_scale.py, left the exact nearest face out of the 160 re-ranked candidates for
    12% of probes; one per dimension kept it in for 99.3% at nprobe = nlist / 8.
    """
    return dim


class RefineBackend(Backend):
    """IndexIVFPQFastScan (candidates, labelled with face ids) + IndexIDMap2(IndexFlatIP)
    (exact vectors by face id), kept in one faiss IndexRefine so a snapshot serialises both.

    IndexRefine itself is only the container: it expects row numbers as labels and cannot
    remove, so search and removal go to the two parts directly.
    """

    kind = KIND

    def __init__(
        self,
        container: Any,
        trained_n: int,
        nprobe: int,
        refine_factor: int,
        keep_alive: tuple[Any, ...] = (),
    ) -> None:
        self.index = container
        # A container built here does not own its parts (Python does); a deserialised one does.
        self._keep_alive = keep_alive
        base = faiss.downcast_index(container.base_index)
        self._projection: np.ndarray | None = None
        if isinstance(base, faiss.IndexPreTransform):
            transform = faiss.downcast_VectorTransform(base.chain.at(0))
            self._projection = faiss.vector_to_array(transform.A).reshape(
                transform.d_out, transform.d_in
            )
            self._pretransform = base
            base = faiss.downcast_index(base.index)
        self.base = base
        self.exact = faiss.downcast_index(container.refine_index)
        self.trained_n = trained_n
        self.nprobe = nprobe
        self.refine_factor = refine_factor
        self._centroids: np.ndarray | None = None  # the coarse centroids, copied on first search

    @classmethod
    def trained(
        cls,
        dim: int,
        vectors: np.ndarray,
        *,
        nlist: int,
        nprobe: int,
        refine_factor: int,
        seed: int,
    ) -> RefineBackend:
        n = len(vectors)
        sample_size = max(64 * nlist, 64 * 16)
        rng = np.random.default_rng(seed)
        sample = vectors
        if n > sample_size:
            sample = vectors[np.sort(rng.choice(n, size=sample_size, replace=False))]
        code_dim = min(dim, CODE_DIM)
        quantizer = faiss.IndexFlatIP(code_dim)
        ivf = faiss.IndexIVFPQFastScan(
            quantizer, code_dim, nlist, _fast_scan_m(code_dim), 4, faiss.METRIC_INNER_PRODUCT
        )
        ivf.cp.spherical = True
        parts: tuple[Any, ...] = (quantizer, ivf)
        base: Any = ivf
        if code_dim < dim:
            projection = _projection(sample, code_dim)
            transform = faiss.LinearTransform(dim, code_dim, False)
            faiss.copy_array_to_vector(projection.ravel(), transform.A)
            transform.is_trained = True
            base = faiss.IndexPreTransform(transform, ivf)
            parts += (transform, base)
            sample = np.asarray(sample, np.float32) @ projection.T
        ivf.train(np.ascontiguousarray(sample, dtype=np.float32))
        flat = faiss.IndexFlatIP(dim)
        exact = faiss.IndexIDMap2(flat)
        container = faiss.IndexRefine(base, exact)
        parts += (flat, exact)
        return cls(container, n, nprobe, refine_factor, keep_alive=parts)

    def _coded(self, vectors: np.ndarray) -> np.ndarray:
        """Vectors as the candidate stage sees them (projected when the index is wider)."""
        if self._projection is None:
            return np.ascontiguousarray(vectors, dtype=np.float32)
        return np.ascontiguousarray(vectors @ self._projection.T, dtype=np.float32)

    def _sync_counts(self) -> None:
        if self._projection is not None:
            self._pretransform.ntotal = self.base.ntotal
        self.index.ntotal = self.base.ntotal

    # -- changes -------------------------------------------------------------------------------
    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        self.base.add_with_ids(self._coded(vectors), ids)
        self.exact.add_with_ids(vectors, ids)
        self._sync_counts()

    def remove(self, ids: np.ndarray) -> None:
        selector = faiss.IDSelectorBatch(ids)
        self.base.remove_ids(selector)
        self.exact.remove_ids(selector)
        self._sync_counts()

    # -- queries -------------------------------------------------------------------------------
    def search(
        self, queries: np.ndarray, k: int, ef_search: int | None, nprobe: int | None
    ) -> tuple[np.ndarray, np.ndarray]:
        wide = max(k, k * self.refine_factor)
        candidates = self._candidates(queries, wide, min(nprobe or self.nprobe, self.base.nlist))
        found = candidates >= 0
        if found.all():
            flat = self.exact.reconstruct_batch(candidates.ravel())
            vectors = flat.reshape(*candidates.shape, queries.shape[1])
        else:
            vectors = np.zeros((*candidates.shape, queries.shape[1]), dtype=np.float32)
            if found.any():
                vectors[found] = self.exact.reconstruct_batch(candidates[found])
        sims = np.matmul(vectors, queries[:, :, None])[..., 0]
        sims[~found] = -np.inf
        order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
        top_sims = np.take_along_axis(sims, order, axis=1)
        top_ids = np.take_along_axis(candidates, order, axis=1)
        top_ids[~np.isfinite(top_sims)] = -1
        if top_sims.shape[1] < k:  # fewer candidates than k: pad like faiss does
            pad = k - top_sims.shape[1]
            top_sims = np.pad(top_sims, ((0, 0), (0, pad)), constant_values=-np.inf)
            top_ids = np.pad(top_ids, ((0, 0), (0, pad)), constant_values=-1)
        return top_sims, top_ids

    def _candidates(self, queries: np.ndarray, wide: int, nprobe: int) -> np.ndarray:
        """Face ids of the ``wide`` best fast-scan scores per query.

        The lists to probe are picked here, with one BLAS product against a copy of the
        centroids, and handed to faiss' ``search_preassigned``: at 1M faces that costs about a
        fifth of what the flat quantizer's own top-``nprobe`` heap does (bench/README.md).
        """
        queries = self._coded(queries)
        centroids = self._centroid_matrix()
        scores = queries @ centroids.T
        if nprobe < len(centroids):
            lists = np.argpartition(-scores, nprobe - 1, axis=1)[:, :nprobe]
        else:
            lists = np.broadcast_to(np.arange(len(centroids)), scores.shape)
        lists = np.ascontiguousarray(lists, dtype=np.int64)
        coarse = np.ascontiguousarray(np.take_along_axis(scores, lists, axis=1), np.float32)
        n = len(queries)
        distances = np.empty((n, wide), dtype=np.float32)
        labels = np.empty((n, wide), dtype=np.int64)
        params = faiss.SearchParametersIVF()
        params.nprobe = lists.shape[1]
        x = queries
        sp = faiss.swig_ptr
        # The Python wrapper of search_preassigned refuses per-call parameters; the C++ call
        # takes them, so concurrent searches never share a mutable nprobe.
        self.base.search_preassigned_c(
            n, sp(x), wide, sp(lists), sp(coarse), sp(distances), sp(labels), False, params
        )
        return labels

    def _centroid_matrix(self) -> np.ndarray:
        if self._centroids is None:
            # Read from the flat quantizer's storage: faiss.contrib.torch_utils (imported by
            # pytorch-metric-learning) makes reconstruct_n return torch tensors.
            quantizer = faiss.downcast_index(self.base.quantizer)
            flat = faiss.rev_swig_ptr(quantizer.get_xb(), quantizer.ntotal * quantizer.d)
            self._centroids = np.array(flat, dtype=np.float32).reshape(quantizer.ntotal, -1)
        return self._centroids

    # -- contents ------------------------------------------------------------------------------
    @property
    def stored(self) -> int:
        return int(self.base.ntotal)

    def live_ids(self) -> np.ndarray:
        return faiss.vector_to_array(self.exact.id_map).astype(np.int64, copy=False)

    def extract(self) -> tuple[np.ndarray, np.ndarray]:
        n = int(self.exact.ntotal)
        inner = faiss.downcast_index(self.exact.index)
        vectors = inner.reconstruct_n(0, n) if n else np.empty((0, self.exact.d))
        return self.live_ids(), np.asarray(vectors, dtype=np.float32)

    def tombstones(self) -> np.ndarray:
        return np.empty(0, dtype=np.int64)

    def needs_compaction(self, fraction: float) -> bool:
        return False

    def outgrown(self, n: int, factor: float) -> bool:
        return n > factor * max(self.trained_n, 1)

    def extra(self) -> dict[str, Any]:
        return {
            "trained_n": self.trained_n,
            "nprobe": self.nprobe,
            "nlist": int(self.base.nlist),
            "refine_factor": self.refine_factor,
            "code_dim": int(self.base.d),
        }

    def gpu_source(self) -> tuple[Any, np.ndarray | None]:
        raise GalleryIndexError(
            f"the {KIND} index has no faiss GPU implementation; use kind ivf or flat on a GPU"
        )
