"""Calibration on labelled distances (numpy only).

Distances are cosine distances (smaller = more alike); ``same`` marks genuine pairs. The
threshold at a target false-accept rate is the largest one whose FAR is at most the target
(:func:`.metrics.tar_at_far`). Its uncertainty comes from a bootstrap that
resamples genuine and impostor pairs separately (the two counts are fixed by the design of the
pair set), and P(same | distance) is a 1-D logistic regression fitted by Newton's method with the
two classes weighted equally, so a confidence of 0.5 sits where the two distance densities meet
(equal prior odds: the confidence says how the distance alone weighs the evidence).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

import numpy as np

from ..errors import CalibrationDataError, InvalidParameterError
from .metrics import roc_auc, tar_at_far

DEFAULT_FAR = 1e-3


def _split(distances: np.ndarray, same: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    d = np.asarray(distances, dtype=np.float64).ravel()
    s = np.asarray(same, dtype=bool).ravel()
    if d.shape != s.shape:
        raise CalibrationDataError(f"{d.size} distances but {s.size} labels")
    if not np.all(np.isfinite(d)):
        raise CalibrationDataError("distances must be finite (drop pairs whose images failed)")
    genuine, impostor = d[s], d[~s]
    if genuine.size == 0 or impostor.size == 0:
        raise CalibrationDataError(
            f"calibration needs genuine and impostor pairs; got {genuine.size} genuine and "
            f"{impostor.size} impostor"
        )
    return genuine, impostor


def roc_curve(distances: np.ndarray, same: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(thresholds, far, tar)`` for every distinct distance (accept ``d <= threshold``),
    ascending thresholds, with a leading point below every distance (FAR = TAR = 0)."""
    genuine, impostor = _split(distances, same)
    values = np.unique(np.concatenate([genuine, impostor]))
    thresholds = np.concatenate([[np.nextafter(values[0], -np.inf)], values])
    far = np.searchsorted(np.sort(impostor), thresholds, side="right") / impostor.size
    tar = np.searchsorted(np.sort(genuine), thresholds, side="right") / genuine.size
    return thresholds, far, tar


def threshold_at_far(impostor_sorted: np.ndarray, target_far: float) -> np.ndarray | float:
    """Largest threshold with FAR <= target over sorted impostor distances (rows if 2-D),
    exactly as :func:`tar_at_far` chooses it."""
    n = impostor_sorted.shape[-1]
    allowed = int(np.floor(target_far * n))
    if allowed >= n:
        return impostor_sorted[..., -1]
    return np.nextafter(impostor_sorted[..., allowed], -np.inf)


def bootstrap(
    genuine: np.ndarray,
    impostor: np.ndarray,
    target_far: float,
    n_boot: int = 1000,
    seed: int = 0,
    chunk_cells: int = 4_000_000,
) -> tuple[np.ndarray, np.ndarray]:
    """Bootstrap replicates ``(thresholds, tars)`` of the operating point at ``target_far``;
    genuine and impostor pairs are resampled separately, with a fixed seed."""
    # One stream per class: the replicates do not depend on how they are chunked.
    rng_i, rng_g = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    thresholds = np.empty(n_boot)
    tars = np.empty(n_boot)
    genuine_sorted = np.sort(genuine)
    step = max(1, chunk_cells // max(impostor.size, 1))
    for start in range(0, n_boot, step):
        m = min(step, n_boot - start)
        imp = np.sort(impostor[rng_i.integers(0, impostor.size, (m, impostor.size))], axis=1)
        thr = np.asarray(threshold_at_far(imp, target_far), dtype=np.float64)
        # A genuine resample is a multinomial count over the original genuine pairs; TAR is
        # the share of resampled pairs at or under the threshold.
        counts = rng_g.multinomial(genuine.size, np.full(genuine.size, 1.0 / genuine.size), m)
        below = np.searchsorted(genuine_sorted, thr, side="right")
        cum = np.concatenate([np.zeros((m, 1), np.int64), np.cumsum(counts, axis=1)], axis=1)
        thresholds[start : start + m] = thr
        tars[start : start + m] = cum[np.arange(m), below] / genuine.size
    return thresholds, tars


def fit_logistic(
    distances: np.ndarray, same: np.ndarray, ridge: float | None = None, max_iter: int = 100
) -> tuple[float, float]:
    """``(a, b)`` of P(same | d) = 1 / (1 + exp(-(a + b d))), by Newton/IRLS.

    Each class carries half the total weight (equal priors). A small ridge on the slope (on
    standardised distances) keeps the fit finite when the classes separate perfectly.
    """
    genuine, impostor = _split(distances, same)
    d = np.concatenate([genuine, impostor])
    y = np.concatenate([np.ones(genuine.size), np.zeros(impostor.size)])
    w = np.concatenate(
        [np.full(genuine.size, 0.5 / genuine.size), np.full(impostor.size, 0.5 / impostor.size)]
    )
    mu, sd = float(d.mean()), float(d.std()) or 1.0
    x = np.stack([np.ones_like(d), (d - mu) / sd], axis=1)
    beta = np.zeros(2)
    penalty = np.diag([0.0, 0.1 / d.size if ridge is None else ridge])
    for _ in range(max_iter):
        p = 1.0 / (1.0 + np.exp(-np.clip(x @ beta, -500, 500)))
        grad = x.T @ (w * (y - p)) - penalty @ beta
        hess = (x * (w * p * (1 - p))[:, None]).T @ x + penalty + 1e-12 * np.eye(2)
        delta = np.linalg.solve(hess, grad)
        beta = beta + delta
        if np.max(np.abs(delta)) < 1e-10:
            break
    b = beta[1] / sd
    a = beta[0] - b * mu
    return float(a), float(b)


def logistic(a: float, b: float, distance: float | np.ndarray) -> float | np.ndarray:
    z = np.clip(a + b * np.asarray(distance, dtype=np.float64), -500, 500)
    out = 1.0 / (1.0 + np.exp(-z))
    return float(out) if np.ndim(out) == 0 else out


@dataclass
class Calibration:
    model: str
    dataset: str
    target_far: float
    threshold: float
    threshold_ci: tuple[float, float]
    far: float
    tar: float
    tar_ci: tuple[float, float]
    n_genuine: int
    n_impostor: int
    logistic: tuple[float, float]  # (a, b): P(same | d) = sigmoid(a + b d)
    created: str  # ISO 8601, UTC
    auc: float = float("nan")
    bootstrap: int = 0
    seed: int = 0
    details: dict[str, object] = field(default_factory=dict)

    @property
    def n_pairs(self) -> int:
        return self.n_genuine + self.n_impostor

    def confidence(self, distance: float) -> float:
        """Calibrated P(same person | distance), equal priors."""
        return float(logistic(self.logistic[0], self.logistic[1], distance))

    def to_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["threshold_ci"] = list(self.threshold_ci)
        data["tar_ci"] = list(self.tar_ci)
        data["logistic"] = {"a": self.logistic[0], "b": self.logistic[1]}
        data["n_pairs"] = self.n_pairs
        data["ci_level"] = 0.95
        data["confidence_at_threshold"] = self.confidence(self.threshold)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> Calibration:
        lg = data.get("logistic") or {}
        a, b = (lg["a"], lg["b"]) if isinstance(lg, dict) else tuple(lg)  # type: ignore[misc]
        return cls(
            model=str(data["model"]),
            dataset=str(data["dataset"]),
            target_far=float(data["target_far"]),  # type: ignore[arg-type]
            threshold=float(data["threshold"]),  # type: ignore[arg-type]
            threshold_ci=tuple(data["threshold_ci"]),  # type: ignore[arg-type]
            far=float(data["far"]),  # type: ignore[arg-type]
            tar=float(data["tar"]),  # type: ignore[arg-type]
            tar_ci=tuple(data["tar_ci"]),  # type: ignore[arg-type]
            n_genuine=int(data["n_genuine"]),  # type: ignore[call-overload]
            n_impostor=int(data["n_impostor"]),  # type: ignore[call-overload]
            logistic=(float(a), float(b)),
            created=str(data["created"]),
            auc=float(data.get("auc", float("nan"))),  # type: ignore[arg-type]
            bootstrap=int(data.get("bootstrap", 0)),  # type: ignore[call-overload]
            seed=int(data.get("seed", 0)),  # type: ignore[call-overload]
            details=dict(data.get("details") or {}),  # type: ignore[call-overload]
        )


def calibrate(
    distances: np.ndarray,
    same: np.ndarray,
    *,
    model: str,
    dataset: str,
    target_far: float = DEFAULT_FAR,
    n_boot: int = 1000,
    seed: int = 0,
    details: dict[str, object] | None = None,
) -> Calibration:
    """Threshold at ``target_far`` with 95% percentile-bootstrap intervals, and P(same | d)."""
    if not 0.0 < target_far < 1.0:
        raise InvalidParameterError(
            f"target FAR must be in (0, 1), got {target_far}", parameter="far"
        )
    d = np.asarray(distances, dtype=np.float64).ravel()
    s = np.asarray(same, dtype=bool).ravel()
    genuine, impostor = _split(d, s)
    op = tar_at_far(d, s, target_far)
    if n_boot > 0:
        thr_b, tar_b = bootstrap(genuine, impostor, target_far, n_boot, seed)
        thr_ci = (float(np.percentile(thr_b, 2.5)), float(np.percentile(thr_b, 97.5)))
        tar_ci = (float(np.percentile(tar_b, 2.5)), float(np.percentile(tar_b, 97.5)))
    else:
        thr_ci, tar_ci = (op.threshold, op.threshold), (op.tar, op.tar)
    notes = dict(details or {})
    if target_far * impostor.size < 1:
        notes.setdefault(
            "warning",
            f"{impostor.size} impostor pairs cannot measure FAR {target_far:g} (smallest "
            f"non-zero FAR is {1 / impostor.size:.2g}); the threshold is just under the "
            "closest impostor",
        )
    return Calibration(
        model=model,
        dataset=dataset,
        target_far=float(target_far),
        threshold=op.threshold,
        threshold_ci=thr_ci,
        far=op.far,
        tar=op.tar,
        tar_ci=tar_ci,
        n_genuine=int(genuine.size),
        n_impostor=int(impostor.size),
        logistic=fit_logistic(d, s),
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        auc=roc_auc(d, s),
        bootstrap=int(n_boot),
        seed=int(seed),
        details=notes,
    )


def equal_density_point(a: float, b: float) -> float:
    """The distance where the fitted P(same | d) is 0.5."""
    return -a / b if b else math.nan
