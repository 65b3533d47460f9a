"""Labelled data for the attribute heads: UTKFace, LFW gender, FER2013; splits fixed in code.

UTKFace has no identity labels, so its 80/20 split is by file (seeded hash of the file name):
the same person may appear on both sides. LFW gender is split by person (people-disjoint).
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...attributes.labels import EMOTIONS, GENDERS, RACES
from ...calibration.cache import EmbeddingCache, embed_images

SEED = 20260601
# FER2013 folder names -> the FER model's class order
FER_FOLDERS = {
    "angry": "angry",
    "disgust": "disgust",
    "fear": "fearful",
    "fearful": "fearful",
    "happy": "happy",
    "neutral": "neutral",
    "sad": "sad",
    "surprise": "surprised",
    "surprised": "surprised",
}
# The class names live on the inference side (attributes.labels); exported here too, as the
# labels this data is read with.
__all__ = [
    "EMOTIONS",
    "FER_FOLDERS",
    "GENDERS",
    "RACES",
    "SEED",
    "UtkItem",
    "embed_folder",
    "is_test",
    "person_of",
    "read_lfw_gender",
    "read_utkface",
]


def is_test(key: str, seed: int = SEED, test_fraction: float = 0.2) -> bool:
    """Fixed split: a seeded hash of ``key`` (a file name or a person) decides its side."""
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < test_fraction


@dataclass
class UtkItem:
    relpath: str
    age: int
    gender: int  # 0 male, 1 female
    race: int  # 0..4, -1 unknown


def read_utkface(folder: Path) -> list[UtkItem]:
    items = []
    for path in sorted(folder.glob("*.jpg")):
        parts = path.name.split("_")
        try:
            age, gender = int(parts[0]), int(parts[1])
        except (ValueError, IndexError):
            continue
        try:
            race = int(parts[2]) if len(parts) > 3 else -1
        except ValueError:
            race = -1
        if gender not in (0, 1) or not 0 <= age <= 120:
            continue
        items.append(UtkItem(path.name, age, gender, race if 0 <= race <= 4 else -1))
    return items


def read_lfw_gender(lfw_dir: Path) -> list[tuple[str, int]]:
    """``(relpath under images/, 0 male | 1 female)`` from ``gender.csv``."""
    out = []
    with (lfw_dir / "gender.csv").open(newline="") as fh:
        for row in csv.DictReader(fh):
            g = row["gender"].strip().upper()
            if g in ("M", "F"):
                out.append((row["image"].strip(), int(g == "F")))
    return out


def person_of(relpath: str) -> str:
    return relpath.split("/")[0]


def embed_folder(
    pipeline,
    name: str,
    folder: Path,
    relpaths: list[str],
    cache_dir: Path,
    progress: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, list[str]]:
    """Embeddings (centre-most face; face assumed at the centre when none is detected), cached."""
    key = f"{pipeline.detector.name}|{pipeline.model}|centre"
    cache = EmbeddingCache(EmbeddingCache.file_for(cache_dir, name, key), pipeline.embedder.dim)
    table = embed_images(pipeline, folder, relpaths, cache, "centre", progress)
    return np.stack([table[p].embedding for p in relpaths]).astype(np.float32), [
        table[p].how for p in relpaths
    ]
