"""Two embedders as one model: each face is embedded by both, and the L2-normalised embeddings
are concatenated with weights ``sqrt(w)`` and ``sqrt(1 - w)``.

The result has unit norm, and its cosine similarity is ``w * cos_a + (1 - w) * cos_b``: a
weighted sum of the two models' scores (score-level fusion by the sum rule), searchable by the
same inner-product index as any other model. The weight comes from the registry; it makes each
model's impostor similarity spread count the same (see ``docs/models/``).
"""

from __future__ import annotations

import math

import numpy as np

from ..types import Detection
from .base import Embedder


class FusedEmbedder(Embedder):
    def __init__(self, name: str, version: str, parts: tuple[Embedder, Embedder], weight: float):
        if not 0.0 < weight < 1.0:
            raise ValueError(f"the first model's weight must be in (0, 1), got {weight}")
        self.name = name
        self.version = version
        self.parts = parts
        self.weights = (math.sqrt(weight), math.sqrt(1.0 - weight))
        self.dim = sum(p.dim for p in parts)

    def crop(self, image: np.ndarray, detection: Detection) -> tuple[np.ndarray, ...]:  # type: ignore[override]
        """One crop per model (their alignments differ)."""
        return tuple(part.crop(image, detection) for part in self.parts)

    def _forward(self, crops: list[tuple[np.ndarray, ...]]) -> np.ndarray:  # type: ignore[override]
        return np.concatenate(
            [
                weight * part.embed_crops([c[i] for c in crops], batch_size=len(crops))
                for i, (part, weight) in enumerate(zip(self.parts, self.weights, strict=True))
            ],
            axis=1,
        )
