"""FER2013 for the emotion models: the listing, its official split, and per image the FER model's
features and the 48x48 grey aligned face the emotion CNN reads, computed once (in the pipeline's
``workers`` processes) and cached.

Each image goes through the same steps as :func:`analyze_images` with
``on_no_face="whole-image"``: upscaled, the centre-most detected face, else the whole image as
the face. FER2013's ``train/`` is the official Training split and ``validation/`` its
PublicTest split; the head trains on the first and reports on the second.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...attributes.analyze import emotion_face
from ...attributes.emotion import FEATURE_DIM, EmotionModel
from ...attributes.emotion_cnn import CNN_SIDE, grey_face
from ...errors import FaceIDError
from ...files import save_npz_atomically
from ...models import MODELS
from ...pipeline import FacePipeline
from .chunk_pool import map_chunks
from .data import EMOTIONS, FER_FOLDERS

SPLITS = ("train", "validation")
CHUNK = 256
SAVE_EVERY_S = 60.0


@dataclass
class FerRows:
    features: np.ndarray  # (N, 2, 519): FER-model features of each face and of its mirror
    faces: np.ndarray  # (N, 48, 48) uint8: the grey aligned face
    how: list[str]  # "detected" | "whole-image" | "error:<code>"


Row = tuple[np.ndarray, np.ndarray, str]


@dataclass(frozen=True)
class FerItem:
    relpath: str  # under the FER2013 folder: <split>/<emotion>/<file>.jpg
    label: int  # index into EMOTIONS
    split: str


def read_fer(fer_dir: Path, limit_per_split: int | None = None) -> list[FerItem]:
    """Every labelled image, in a fixed order; ``limit_per_split`` keeps a seeded sample."""
    items: list[FerItem] = []
    for split in SPLITS:
        found = [
            FerItem(f"{split}/{d.name}/{p.name}", EMOTIONS.index(FER_FOLDERS[d.name]), split)
            for d in sorted((fer_dir / split).iterdir())
            if d.is_dir() and d.name in FER_FOLDERS
            for p in sorted(d.glob("*.jpg"))
        ]
        if limit_per_split is not None and len(found) > limit_per_split:
            rng = np.random.default_rng(len(found))
            found = [found[i] for i in sorted(rng.choice(len(found), limit_per_split, False))]
        items.extend(found)
    return items


def _cache_file(cache_dir: Path, pipeline: FacePipeline) -> Path:
    key = f"{pipeline.detector.name}|{MODELS['fer-mobilefacenet'].tag}|fer-features-v2"
    return cache_dir / f"fer2013-{hashlib.sha256(key.encode()).hexdigest()[:10]}.npz"


def _load(path: Path) -> dict[str, Row]:
    if not path.is_file():
        return {}
    try:
        with np.load(path, allow_pickle=False) as data:
            rows = zip(data["paths"], data["features"], data["faces"], data["how"], strict=True)
            return {str(k): (f, g, str(h)) for k, f, g, h in rows}
    except (OSError, ValueError, KeyError):
        return {}  # a damaged cache is only a slower run


def _save(path: Path, table: dict[str, Row]) -> None:
    keys = sorted(table)
    save_npz_atomically(
        path,
        paths=np.array(keys),
        features=np.stack([table[k][0] for k in keys]).astype(np.float32),
        faces=np.stack([table[k][1] for k in keys]).astype(np.uint8),
        how=np.array([table[k][2] for k in keys]),
    )


def fer_features(
    pipeline: FacePipeline,
    fer_dir: Path,
    items: list[FerItem],
    cache_dir: Path,
    progress: Callable[[int], None] | None = None,
) -> FerRows:
    """The FER-model features, grey face and how the face was found, per item."""
    path = _cache_file(cache_dir, pipeline)
    table = _load(path)
    todo = [i.relpath for i in items if i.relpath not in table]
    chunks = [[fer_dir / p for p in todo[s : s + CHUNK]] for s in range(0, len(todo), CHUNK)]
    if chunks:
        saved = time.monotonic()
        results = map_chunks(pipeline, chunks, _features_of, _fer_model)
        for n, (part, rows) in enumerate(zip(chunks, results, strict=True)):
            for image, row in zip(part, rows, strict=True):
                table[str(image.relative_to(fer_dir))] = row
            # Each save rewrites the whole table, so an interrupted run loses at most a minute.
            if time.monotonic() - saved > SAVE_EVERY_S or n == len(chunks) - 1:
                _save(path, table)
                saved = time.monotonic()
            if progress:
                progress(len(part))
    rows = [table[i.relpath] for i in items]
    return FerRows(
        features=np.stack([r[0] for r in rows]),
        faces=np.stack([r[1] for r in rows]),
        how=[r[2] for r in rows],
    )


def _fer_model(pipeline: FacePipeline) -> EmotionModel:
    return EmotionModel(pipeline.settings, load_trained=False)


def _features_of(pipeline: FacePipeline, model: EmotionModel, chunk: list[Path]) -> list[Row]:
    out = []
    for image in chunk:
        try:
            array, detection, how = emotion_face(pipeline, image)
        except FaceIDError as exc:  # an unreadable file is recorded, not fatal
            nothing = np.full((2, FEATURE_DIM), np.nan, np.float32)
            out.append((nothing, np.zeros((CNN_SIDE, CNN_SIDE), np.uint8), f"error:{exc.code}"))
            continue
        crop = model.crop(array, detection.landmarks)
        out.append((model.features([crop])[0], grey_face(crop), how))
    return out
