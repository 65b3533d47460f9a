"""FER2013 for the emotion head: the listing, its official split, and the FER model's features
per image, computed once (in the pipeline's ``workers`` processes) and cached.

Each image goes through the same steps as :func:`analyze_images` with
``on_no_face="whole-image"``: upscaled, the centre-most detected face, else the whole image as
the face. FER2013's ``train/`` is the official Training split and ``validation/`` its
PublicTest split; the head trains on the first and reports on the second.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import FaceIDError
from .data import EMOTIONS, FER_FOLDERS
from .emotion import FEATURE_DIM, EmotionModel

if TYPE_CHECKING:
    from ..pipeline import FacePipeline

SPLITS = ("train", "validation")
CHUNK = 256


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
    from ..models import MODELS

    key = f"{pipeline.detector.name}|{MODELS['fer-mobilefacenet'].tag}|fer-features-v1"
    return cache_dir / f"fer2013-{hashlib.sha256(key.encode()).hexdigest()[:10]}.npz"


def _load(path: Path) -> dict[str, tuple[np.ndarray, str]]:
    if not path.is_file():
        return {}
    try:
        with np.load(path, allow_pickle=False) as data:
            return {
                str(k): (f, str(h))
                for k, f, h in zip(data["paths"], data["features"], data["how"], strict=True)
            }
    except (OSError, ValueError, KeyError):
        return {}  # a damaged cache is only a slower run


def _save(path: Path, table: dict[str, tuple[np.ndarray, str]]) -> None:
    keys = sorted(table)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.npz")
    np.savez(
        tmp,
        paths=np.array(keys),
        features=np.stack([table[k][0] for k in keys]).astype(np.float32),
        how=np.array([table[k][1] for k in keys]),
    )
    tmp.replace(path)


def fer_features(
    pipeline: FacePipeline,
    fer_dir: Path,
    items: list[FerItem],
    cache_dir: Path,
    progress: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, list[str]]:
    """``(N, 2, 519)`` features of each item (face, mirror) and how its face was found."""
    path = _cache_file(cache_dir, pipeline)
    table = _load(path)
    todo = [i.relpath for i in items if i.relpath not in table]
    chunks = [[fer_dir / p for p in todo[s : s + CHUNK]] for s in range(0, len(todo), CHUNK)]
    if chunks:
        for part, rows in zip(chunks, _map_chunks(pipeline, chunks), strict=True):
            for image, row in zip(part, rows, strict=True):
                table[str(image.relative_to(fer_dir))] = row
            _save(path, table)
            if progress:
                progress(len(part))
    return np.stack([table[i.relpath][0] for i in items]), [table[i.relpath][1] for i in items]


def _map_chunks(pipeline: FacePipeline, chunks: list[list[Path]]):
    if pipeline.workers <= 1 or len(chunks) == 1:
        model = EmotionModel(pipeline.settings, use_head=False)
        return (_features_of(pipeline, model, chunk) for chunk in chunks)
    import multiprocessing

    pool = ProcessPoolExecutor(
        max_workers=pipeline.workers,
        mp_context=multiprocessing.get_context("fork"),
        initializer=_init_worker,
        initargs=(pipeline.settings, pipeline.detector.name, pipeline.model),
    )
    return _closing_map(pool, chunks)


def _closing_map(pool: ProcessPoolExecutor, chunks: list[list[Path]]):
    with pool:
        yield from pool.map(_worker_features, chunks)


_worker: dict[str, object] = {}


def _init_worker(settings, detector: str, embedder: str) -> None:
    from ..pipeline import FacePipeline

    _worker["pipeline"] = FacePipeline(detector, embedder, settings=settings, workers=1)
    _worker["model"] = EmotionModel(settings, use_head=False)


def _worker_features(chunk: list[Path]) -> list[tuple[np.ndarray, str]]:
    return _features_of(_worker["pipeline"], _worker["model"], chunk)  # type: ignore[arg-type]


def _features_of(
    pipeline: FacePipeline, model: EmotionModel, chunk: list[Path]
) -> list[tuple[np.ndarray, str]]:
    from .analyze import emotion_face

    out = []
    for image in chunk:
        try:
            array, detection, how = emotion_face(pipeline, image)
        except FaceIDError as exc:  # an unreadable file is recorded, not fatal
            out.append((np.full((2, FEATURE_DIM), np.nan, np.float32), f"error:{exc.code}"))
            continue
        out.append((model.features([model.crop(array, detection.landmarks)])[0], how))
    return out
