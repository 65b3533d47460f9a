"""The embedder interface: align a detected face to the model's crop, embed crops in batches."""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from ..types import Detection


def l2_normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


class Embedder(ABC):
    name: str
    version: str
    dim: int

    @property
    def tag(self) -> str:
        """``name@version``: stored with every embedding; an index never mixes tags."""
        return f"{self.name}@{self.version}"

    @abstractmethod
    def crop(self, image: np.ndarray, detection: Detection) -> np.ndarray:
        """The aligned face crop this model expects (RGB uint8)."""

    @abstractmethod
    def _forward(self, crops: list[np.ndarray]) -> np.ndarray:
        """Raw embeddings for a batch of crops, shape (n, dim)."""

    def embed_crops(self, crops: list[np.ndarray], batch_size: int = 32) -> np.ndarray:
        """L2-normalised float32 embeddings, shape (n, dim)."""
        if not crops:
            return np.zeros((0, self.dim), dtype=np.float32)
        parts = [self._forward(crops[i : i + batch_size]) for i in range(0, len(crops), batch_size)]
        return l2_normalise(np.concatenate(parts, axis=0))
