"""Calibrations in the database, and the threshold policy: which one is in force for a model
or a collection."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..config import Settings
from ..errors import DatasetError, NoThresholdError
from ..models import default_threshold
from ..store import CalibrationRecord, CollectionRecord, Repository
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


def model_threshold_in_force(repo: Repository, model_tag: str) -> InForce | None:
    """The newest model-wide calibration of a model (what ``verify`` of two images uses)."""
    record = latest_for(repo, model_tag)
    return None if record is None else InForce(record.threshold, describe(record), record)


def collection_threshold_in_force(
    repo: Repository, collection: CollectionRecord, settings: Settings
) -> InForce:
    """A collection's 1:1 threshold and its source: its own threshold, else the newest
    calibration of its model (its own or model-wide), else the model's shipped default."""
    record = latest_for(repo, collection.model_tag, collection.id)
    if collection.threshold is not None:
        if record is not None and record.threshold == collection.threshold:
            return InForce(collection.threshold, describe(record), record)
        return InForce(collection.threshold, f"collection {collection.name} threshold")
    if record is not None:
        return InForce(record.threshold, describe(record), record)
    default = default_threshold(collection.model, settings)
    if default is None:
        raise NoThresholdError(
            f"collection {collection.name!r} has no threshold and model {collection.model} "
            "ships none: calibrate one"
        )
    return InForce(default.value, default.source)
