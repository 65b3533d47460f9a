"""Threshold calibration at a target false-accept rate, with bootstrap intervals and a fitted
P(same | distance); see :mod:`.core` for the method and ``faceid calibrate`` for the command."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..store import CalibrationRecord
from .core import (
    DEFAULT_FAR,
    Calibration,
    bootstrap,
    calibrate,
    equal_density_point,
    fit_logistic,
    logistic,
    roc_curve,
)
from .plots import write_plots
from .sources import PairSet, collection_pairs, csv_pairs, lfw_pairs, read_csv_pairs
from .store import (
    InForce,
    collection_threshold_in_force,
    describe,
    latest_for,
    model_threshold_in_force,
    save_calibration,
)


@dataclass
class CalibrationRun:
    """A calibration with the pairs it was computed on and, once stored, its database row."""

    calibration: Calibration
    pairs: PairSet
    record: CalibrationRecord | None = None


def calibrate_pairset(
    pairs: PairSet,
    model: str,
    *,
    target_far: float = DEFAULT_FAR,
    n_boot: int = 1000,
    seed: int = 0,
    extra: dict[str, object] | None = None,
) -> Calibration:
    return calibrate(
        pairs.distances,
        pairs.same,
        model=model,
        dataset=pairs.dataset,
        target_far=target_far,
        n_boot=n_boot,
        seed=seed,
        details={**pairs.details, **(extra or {})},
    )


def write_report(
    cal: Calibration, pairs: PairSet, out_dir: Path, *, plots: bool = True
) -> list[Path]:
    """``calibration.json`` (the report) and, with ``plots``, ROC/DET/histogram PNGs."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    if plots:
        written = write_plots(pairs.distances, pairs.same, cal, out_dir)
    path = out_dir / "calibration.json"
    data = cal.to_dict()
    data["files"] = [p.name for p in written]
    path.write_text(json.dumps(data, indent=2, default=_json_default) + "\n")
    return [path, *written]


def _json_default(obj: object) -> object:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


__all__ = [
    "DEFAULT_FAR",
    "Calibration",
    "CalibrationRun",
    "InForce",
    "PairSet",
    "bootstrap",
    "calibrate",
    "calibrate_pairset",
    "collection_pairs",
    "collection_threshold_in_force",
    "csv_pairs",
    "describe",
    "equal_density_point",
    "fit_logistic",
    "latest_for",
    "lfw_pairs",
    "logistic",
    "model_threshold_in_force",
    "read_csv_pairs",
    "roc_curve",
    "save_calibration",
    "write_report",
]
