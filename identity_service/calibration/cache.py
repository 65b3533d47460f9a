"""One embedding per image of a labelled set (the face the protocol uses), computed once and
kept in a disk cache keyed by pipeline: what calibrating on LFW pairs (or a CSV of pairs) and the
evaluations in ``identity_service.training.eval`` both embed their images with."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..align import ARCFACE_TEMPLATE_112
from ..errors import FaceIDError, NoFaceError
from ..files import save_npz_atomically
from ..imaging import load_image
from ..pipeline import FacePipeline
from ..types import Box, Detection


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


def assumed_centre_detection(width: int, height: int) -> Detection:
    """Where an LFW-style photo's face is when the detector misses it: the centre."""
    side = 0.42 * min(width, height)
    cx, cy = width / 2.0, height * 0.52
    box = Box(cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2)
    # Canonical landmarks placed as the ArcFace template places them in its crop.
    landmarks = (ARCFACE_TEMPLATE_112 / 112.0 * side + [box.x1, box.y1]).astype(np.float32)
    return Detection(box=box, landmarks=landmarks, score=0.0, detector="assumed-centre")


def embed_images(
    pipeline: FacePipeline,
    images_dir: Path,
    relpaths: list[str],
    cache: EmbeddingCache,
    on_no_face: str = "centre",
    progress: Callable[[int], None] | None = None,
) -> dict[str, CachedEmbedding]:
    """One embedding per image (the centre-most face), computed once and cached."""
    todo = [p for p in relpaths if p not in cache.items]
    step = 64
    for start in range(0, len(todo), step):
        part = todo[start : start + step]
        results = pipeline.represent_batch([images_dir / p for p in part])
        for rel, result in zip(part, results, strict=True):
            cache.items[rel] = _one(pipeline, images_dir / rel, result, on_no_face)
        cache.save()
        if progress:
            progress(len(part))
    return {p: cache.items[p] for p in relpaths}


def _one(pipeline: FacePipeline, path: Path, result: object, on_no_face: str) -> CachedEmbedding:
    if isinstance(result, list):
        return CachedEmbedding(result[0].embedding, "detected", len(result))
    if isinstance(result, NoFaceError) and on_no_face == "centre":
        array = load_image(path)
        det = assumed_centre_detection(array.shape[1], array.shape[0])
        face = pipeline.represent_detections(array, [det])[0]
        return CachedEmbedding(face.embedding, "assumed-centre", 0)
    code = result.code if isinstance(result, FaceIDError) else "unknown"
    return CachedEmbedding(np.full(pipeline.embedder.dim, np.nan, np.float32), f"error:{code}", 0)
