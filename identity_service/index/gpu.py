"""A GPU mirror of a CPU gallery structure (faiss-gpu, selected by ``Settings.index.gpu``)."""

from __future__ import annotations

import threading
from typing import Any

import faiss
import numpy as np

from .backends import Backend, IVFBackend
from .errors import GalleryIndexError, GpuUnavailableError


class GpuMirror:
    """A GPU copy of a CPU backend, re-cloned lazily after the CPU index changes.

    The CPU index stays the truth (GPU faiss cannot remove from a flat index); cloning a
    1M x 512 gallery costs ~2 GB of transfer, cheap next to a read-heavy query load.
    """

    def __init__(self, device: int = 0) -> None:
        if not hasattr(faiss, "StandardGpuResources") or faiss.get_num_gpus() < 1:
            raise GpuUnavailableError(
                "FACEID_INDEX_GPU is set but this faiss build has no GPU support or sees no GPU; "
                "install faiss-gpu (the 'gpu' extra) on a CUDA host or set FACEID_INDEX_GPU=false"
            )
        self._device = device
        self._resources = faiss.StandardGpuResources()
        self._lock = threading.Lock()  # GPU resources must not be used by two threads at once
        self._version = -1
        self._index: Any = None
        self._labels: np.ndarray | None = None

    def search(
        self, backend: Backend, version: int, queries: np.ndarray, k: int, nprobe: int | None
    ) -> tuple[np.ndarray, np.ndarray]:
        if k > 2048:
            raise GalleryIndexError("faiss GPU search supports k <= 2048")
        with self._lock:
            if self._version != version:
                source, labels = backend.gpu_source()
                self._index = faiss.index_cpu_to_gpu(self._resources, self._device, source)
                self._labels, self._version = labels, version
            if isinstance(backend, IVFBackend):
                self._index.nprobe = min(nprobe or backend.nprobe, backend.index.nlist)
            sims, rows = self._index.search(queries, k)
            labels = self._labels
        if labels is None:
            return sims, rows
        return sims, np.where(rows >= 0, labels[np.maximum(rows, 0)], -1)
