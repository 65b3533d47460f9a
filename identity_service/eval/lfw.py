"""The LFW verification protocol on the shared View-2 pairs (folds 1-7 here).

Per fold, the threshold is the best-accuracy one on the other folds, and accuracy is measured on
the fold; we report mean and standard deviation, ROC AUC and TAR at a FAR. Each image contributes
its centre-most face (LFW's face of interest is the one nearest the centre). Where no face is
detected the image is not dropped: by default the face is assumed at the image centre (LFW images
are centred on it) and the count of such images is reported.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DatasetError, FaceIDError, NoFaceError
from ..pipeline import FacePipeline
from ..types import Box, Detection
from .cache import CachedEmbedding, EmbeddingCache
from .metrics import OperatingPoint, accuracy_at, best_threshold, roc_auc, tar_at_far


@dataclass(frozen=True)
class Pair:
    fold: int
    image1: str  # path relative to the images folder
    image2: str
    same: bool


def read_pairs(path: Path) -> list[Pair]:
    """Parse an LFW ``pairs.txt`` (header ``folds n``; n same then n different pairs per fold)."""
    if not path.is_file():
        raise DatasetError(f"LFW pairs file not found: {path} (set FACEID_SHARED_DIR)")
    lines = [ln.split() for ln in path.read_text().splitlines() if ln.strip()]
    try:
        n_folds, per_fold = int(lines[0][0]), int(lines[0][1])
    except (IndexError, ValueError) as exc:
        raise DatasetError(f"{path}: first line must be '<folds> <pairs per class>'") from exc
    pairs: list[Pair] = []
    for i, parts in enumerate(lines[1:]):
        fold = i // (2 * per_fold)
        if len(parts) == 3:
            name, a, b = parts
            pairs.append(Pair(fold, _image(name, a), _image(name, b), True))
        elif len(parts) == 4:
            n1, a, n2, b = parts
            pairs.append(Pair(fold, _image(n1, a), _image(n2, b), False))
        else:
            raise DatasetError(f"{path}: line {i + 2} is not a pair: {' '.join(parts)}")
    if len(pairs) != n_folds * 2 * per_fold:
        raise DatasetError(
            f"{path}: header promises {n_folds * 2 * per_fold} pairs, file has {len(pairs)}"
        )
    return pairs


def _image(name: str, number: str) -> str:
    return f"{name}/{name}_{int(number):04d}.jpg"


def assumed_centre_detection(width: int, height: int) -> Detection:
    """Where an LFW-style photo's face is when the detector misses it: the centre."""
    side = 0.42 * min(width, height)
    cx, cy = width / 2.0, height * 0.52
    box = Box(cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2)
    # Canonical landmarks placed as the ArcFace template places them in its crop.
    from ..align import ARCFACE_TEMPLATE_112

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
        from ..imaging import load_image

        array = load_image(path)
        det = assumed_centre_detection(array.shape[1], array.shape[0])
        face = pipeline.represent_detections(array, [det])[0]
        return CachedEmbedding(face.embedding, "assumed-centre", 0)
    code = result.code if isinstance(result, FaceIDError) else "unknown"
    return CachedEmbedding(np.full(pipeline.embedder.dim, np.nan, np.float32), f"error:{code}", 0)


@dataclass
class LfwReport:
    model: str
    detector: str
    n_pairs: int
    n_folds: int
    fold_accuracies: list[float]
    mean_accuracy: float
    std_accuracy: float
    auc: float
    tar_at_far: OperatingPoint
    best_threshold_all_folds: float
    images: int
    no_face_images: int
    no_face_handling: str
    error_images: int
    pairs_with_errors: int
    extra: dict[str, object] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def evaluate(
    pipeline: FacePipeline,
    lfw_dir: Path,
    cache_dir: Path,
    far: float = 1e-3,
    on_no_face: str = "centre",
    progress: Callable[[int], None] | None = None,
    folds: list[int] | None = None,
) -> LfwReport:
    pairs = read_pairs(lfw_dir / "pairs.txt")
    if folds is not None:
        pairs = [p for p in pairs if p.fold in folds]
    relpaths = sorted({p.image1 for p in pairs} | {p.image2 for p in pairs})
    key = f"{pipeline.detector.name}|{pipeline.model}|{on_no_face}"
    cache = EmbeddingCache(EmbeddingCache.file_for(cache_dir, "lfw", key), pipeline.embedder.dim)
    table = embed_images(pipeline, lfw_dir / "images", relpaths, cache, on_no_face, progress)

    e1 = np.stack([table[p.image1].embedding for p in pairs])
    e2 = np.stack([table[p.image2].embedding for p in pairs])
    distances = 1.0 - np.sum(e1 * e2, axis=1)
    same = np.array([p.same for p in pairs])
    fold_ids = np.array([p.fold for p in pairs])
    # A pair with an undecodable image counts as a wrong answer, not as absent.
    broken = ~np.isfinite(distances)
    distances = np.where(broken, np.where(same, np.inf, -np.inf), distances)

    accs = []
    for fold in sorted(set(fold_ids.tolist())):
        test = fold_ids == fold
        # With a single fold there is nothing else to choose on: the figure is then optimistic.
        train = (~test if len(set(fold_ids.tolist())) > 1 else test) & ~broken
        threshold = best_threshold(distances[train], same[train])
        accs.append(accuracy_at(distances[test], same[test], threshold))
    hows = [table[p].how for p in relpaths]
    ok = ~broken
    return LfwReport(
        model=pipeline.model,
        detector=pipeline.detector.name,
        n_pairs=len(pairs),
        n_folds=len(accs),
        fold_accuracies=accs,
        mean_accuracy=float(np.mean(accs)),
        std_accuracy=float(np.std(accs, ddof=1)) if len(accs) > 1 else 0.0,
        auc=roc_auc(distances[ok], same[ok]),
        tar_at_far=tar_at_far(distances[ok], same[ok], far),
        best_threshold_all_folds=best_threshold(distances[ok], same[ok]),
        images=len(relpaths),
        no_face_images=sum(h == "assumed-centre" for h in hows),
        no_face_handling="face assumed at the image centre" if on_no_face == "centre" else "error",
        error_images=sum(h.startswith("error") for h in hows),
        pairs_with_errors=int(broken.sum()),
    )
