"""Which faiss structure a kind names: build a new one, or wrap one read from a snapshot."""

from __future__ import annotations

from typing import Any

import numpy as np

from .backends import (
    Backend,
    FlatBackend,
    HNSWBackend,
    IndexParams,
    IVFBackend,
    default_nlist,
    default_nprobe,
)
from .errors import GalleryIndexError
from .refine import KIND as REFINE_KIND
from .refine import RefineBackend

KINDS = ("flat", "ivf", "hnsw", "ivfpq", REFINE_KIND)


def build_backend(
    kind: str, dim: int, params: IndexParams, ids: np.ndarray, vectors: np.ndarray
) -> Backend:
    """A new backend of ``kind`` holding exactly (ids, vectors); trains IVF kinds on them."""
    backend: Backend
    if kind == "flat":
        backend = FlatBackend(dim)
    elif kind == "hnsw":
        backend = HNSWBackend(dim, params)
    elif kind in ("ivf", "ivfpq"):
        backend = IVFBackend.trained(kind, dim, params, vectors)
    elif kind == REFINE_KIND:
        nlist = min(params.ivf_nlist or default_nlist(len(vectors)), max(1, len(vectors)))
        backend = RefineBackend.trained(
            dim,
            vectors,
            nlist=nlist,
            nprobe=min(params.ivf_nprobe or default_nprobe(nlist), nlist),
            refine_factor=max(1, params.refine_factor),
            seed=params.seed,
        )
    else:
        raise GalleryIndexError(f"unknown index kind {kind!r}; expected one of {KINDS}")
    if len(ids):
        backend.add(ids, vectors)
    return backend


def restore_backend(
    kind: str,
    dim: int,
    params: IndexParams,
    index: Any,
    extra: dict[str, Any],
    tombstones: np.ndarray,
) -> Backend:
    """Wrap a deserialised faiss index back into its backend (snapshot loading)."""
    if int(index.d) != dim:
        raise GalleryIndexError(f"faiss index has dimension {index.d}, expected {dim}")
    if kind == "flat":
        return FlatBackend(dim, index)
    if kind == "hnsw":
        backend = HNSWBackend(dim, params, index, tombstones)
        backend.ef_search = int(extra.get("ef_search", params.hnsw_ef_search))
        return backend
    if kind in ("ivf", "ivfpq"):
        # deserialize_index already returns the concrete class, and owns it: use it as is.
        nprobe = int(extra.get("nprobe") or default_nprobe(index.nlist))
        return IVFBackend(kind, index, int(extra.get("trained_n", index.ntotal)), nprobe)
    if kind == REFINE_KIND:
        return RefineBackend(
            index,
            int(extra.get("trained_n", index.ntotal)),
            int(extra.get("nprobe") or default_nprobe(int(extra.get("nlist", 1)))),
            int(extra.get("refine_factor", params.refine_factor)),
        )
    raise GalleryIndexError(f"unknown index kind {kind!r}")
