"""The LFW verification protocol on the shared View-2 pairs (folds 1-7 here).

Per fold, the threshold is the best-accuracy one on the other folds, and accuracy is measured on
the fold; we report mean and standard deviation, ROC AUC and TAR at a FAR. Each image contributes
its centre-most face (LFW's face of interest is the one nearest the centre). Where no face is
detected the image is not dropped: by default the face is assumed at the image centre (LFW images
are centred on it) and the count of such images is reported.

Reading ``pairs.txt`` and embedding the images once (cached) are the calibration's
(:func:`identity_service.calibration.sources.read_pairs`,
:func:`identity_service.calibration.cache.embed_images`): ``faceid calibrate --lfw`` reads the
same pairs through the same cache.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ...calibration.cache import EmbeddingCache, embed_images
from ...calibration.metrics import OperatingPoint, accuracy_at, best_threshold, roc_auc, tar_at_far
from ...calibration.sources import read_pairs
from ...pipeline import FacePipeline


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


def images_in_pairs(lfw_dir: Path, folds: list[int] | None = None) -> int:
    """How many distinct images the pairs of ``folds`` (0-based; None: all) name."""
    pairs = [p for p in read_pairs(lfw_dir / "pairs.txt") if folds is None or p.fold in folds]
    return len({p.image1 for p in pairs} | {p.image2 for p in pairs})


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
