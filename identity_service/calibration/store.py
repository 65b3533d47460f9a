"""Calibrations in the database, and which one is in force for a model (or a collection)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import DatasetError
from ..store import CalibrationRecord, Repository
from .core import Calibration, logistic


@dataclass(frozen=True)
class InForce:
    """The threshold a decision uses, where it came from, and the fitted confidence if any."""

    threshold: float
    source: str
    record: CalibrationRecord | None = None

    @property
    def logistic(self) -> tuple[float, float] | None:
        lg = (self.record.report or {}).get("logistic") if self.record else None
        if isinstance(lg, dict) and "a" in lg and "b" in lg:
            return float(lg["a"]), float(lg["b"])
        return None

    def confidence(self, distance: float) -> float | None:
        lg = self.logistic
        return None if lg is None else float(logistic(lg[0], lg[1], distance))


def describe(record: CalibrationRecord) -> str:
    """``calibration #3: lfw, FAR 0.001, 2026-11-29`` (plus the collection when per collection)."""
    where = f", collection #{record.collection_id}" if record.collection_id is not None else ""
    return (
        f"calibration #{record.id}: {record.dataset}, FAR {record.target_far:g}, "
        f"{record.created.date().isoformat()}{where}"
    )


def save_calibration(
    repo: Repository, cal: Calibration, collection_id: int | None = None, *, force: bool = False
) -> CalibrationRecord:
    """Store ``cal``; one computed for a collection also becomes that collection's threshold.

    Stored calibrations decide: one whose impostor pairs are too few to measure its target FAR
    (fewer than 1/FAR) is refused unless ``force``; its threshold would sit just under the
    closest impostor, with a real FAR nobody measured."""
    if not force and cal.n_impostor * cal.target_far < 1:
        raise DatasetError(
            f"{cal.n_impostor} impostor pairs cannot measure FAR {cal.target_far:g} (at least "
            f"{math.ceil(1 / cal.target_far)} are needed): calibrate on more identities, aim "
            "at a larger FAR, or force it",
            n_impostor=cal.n_impostor,
            target_far=cal.target_far,
        )
    record = repo.add_calibration(
        model=cal.model,
        dataset=cal.dataset,
        target_far=cal.target_far,
        threshold=cal.threshold,
        tar=cal.tar,
        n_pairs=cal.n_pairs,
        report=cal.to_dict(),
        collection_id=collection_id,
    )
    if collection_id is not None:
        repo.set_threshold(collection_id, cal.threshold)
    return record


def latest_for(
    repo: Repository, model: str, collection_id: int | None = None
) -> CalibrationRecord | None:
    """The newest calibration of ``model`` for this collection, else the newest model-wide
    one (calibrations made on another collection never apply)."""
    return repo.calibration_in_force(model, collection_id)
