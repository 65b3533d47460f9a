"""A disk cache of one embedding per image (the face the protocol uses), keyed by pipeline."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..files import save_npz_atomically


@dataclass
class CachedEmbedding:
    embedding: np.ndarray
    how: str  # "detected" | "assumed-centre" | "error:<code>"
    n_faces: int


class EmbeddingCache:
    """``{image path: CachedEmbedding}`` saved as one .npz file; safe to delete any time."""

    def __init__(self, path: Path, dim: int) -> None:
        self.path = path
        self.dim = dim
        self.items: dict[str, CachedEmbedding] = {}
        if path.is_file():
            try:
                data = np.load(path, allow_pickle=False)
                for key, emb, how, n in zip(
                    data["paths"], data["embeddings"], data["how"], data["n_faces"], strict=True
                ):
                    self.items[str(key)] = CachedEmbedding(emb, str(how), int(n))
            except (OSError, ValueError, KeyError):
                self.items = {}  # a damaged cache is only a slower run

    @staticmethod
    def file_for(cache_dir: Path, name: str, pipeline_key: str) -> Path:
        digest = hashlib.sha256(pipeline_key.encode()).hexdigest()[:10]
        return cache_dir / f"{name}-{digest}.npz"

    def save(self) -> None:
        keys = sorted(self.items)
        save_npz_atomically(
            self.path,
            paths=np.array(keys),
            embeddings=np.stack([self.items[k].embedding for k in keys])
            if keys
            else np.zeros((0, self.dim), np.float32),
            how=np.array([self.items[k].how for k in keys]),
            n_faces=np.array([self.items[k].n_faces for k in keys], dtype=np.int32),
        )
