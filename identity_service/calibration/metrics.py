"""Verification metrics on distances (smaller = more alike) and same/different labels: what a
calibration reports, and what the evaluations in ``identity_service.training`` measure with."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def accuracy_at(distances: np.ndarray, same: np.ndarray, threshold: float) -> float:
    return float(np.mean((distances <= threshold) == same))


def best_threshold(distances: np.ndarray, same: np.ndarray) -> float:
    """The threshold maximising accuracy; midpoint between neighbouring distances."""
    order = np.sort(np.unique(distances))
    candidates = np.concatenate([[order[0] - 1e-6], (order[:-1] + order[1:]) / 2, [order[-1]]])
    # Vectorised accuracy for every candidate: correct = TP + TN.
    d_same = np.sort(distances[same])
    d_diff = np.sort(distances[~same])
    tp = np.searchsorted(d_same, candidates, side="right")
    tn = len(d_diff) - np.searchsorted(d_diff, candidates, side="right")
    return float(candidates[int(np.argmax(tp + tn))])


def roc_auc(distances: np.ndarray, same: np.ndarray) -> float:
    """P(distance of a random genuine pair < that of a random impostor pair), ties half."""
    scores = -distances
    pos, neg = scores[same], scores[~same]
    ranks = _average_ranks(np.concatenate([pos, neg]))
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def _average_ranks(values: np.ndarray) -> np.ndarray:
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(len(values), dtype=np.float64)
    sorted_vals = values[order]
    i = 0
    while i < len(values):
        j = i
        while j + 1 < len(values) and sorted_vals[j + 1] == sorted_vals[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


@dataclass
class OperatingPoint:
    far_target: float
    threshold: float
    far: float
    tar: float
    n_impostor: int
    n_genuine: int


def tar_at_far(distances: np.ndarray, same: np.ndarray, far_target: float) -> OperatingPoint:
    """The largest threshold whose false-accept rate is at most ``far_target``.

    With n impostor pairs the smallest non-zero FAR measurable is 1/n; below that the point is
    the threshold just under the closest impostor (FAR 0).
    """
    impostor = np.sort(distances[~same])
    genuine = distances[same]
    allowed = int(np.floor(far_target * len(impostor)))
    if allowed >= len(impostor):
        threshold = float(impostor[-1])
    else:
        # Accept strictly below the (allowed)-th closest impostor distance.
        threshold = float(np.nextafter(impostor[allowed], -np.inf))
    return OperatingPoint(
        far_target=far_target,
        threshold=threshold,
        far=float(np.mean(impostor <= threshold)),
        tar=float(np.mean(genuine <= threshold)),
        n_impostor=len(impostor),
        n_genuine=len(genuine),
    )


def accuracy_interval(
    correct: np.ndarray,
    groups: np.ndarray | None = None,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of the share of ``correct``. With ``groups`` (an LFW
    person, say) whole groups are resampled: one person's images are right or wrong together, so
    resampling single images would understate the spread."""
    correct = np.asarray(correct, bool)
    if correct.size == 0:
        return (float("nan"), float("nan"))
    if groups is None:
        groups = np.arange(correct.size)
    _, index = np.unique(np.asarray(groups), return_inverse=True)
    hits = np.bincount(index, weights=correct.astype(np.float64))
    sizes = np.bincount(index).astype(np.float64)
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(len(sizes), np.full(len(sizes), 1.0 / len(sizes)), n_boot)
    shares = (counts @ hits) / (counts @ sizes)
    tail = (1.0 - level) / 2 * 100
    lo, hi = np.percentile(shares, [tail, 100 - tail])
    return (float(lo), float(hi))
