"""FaceService's thresholds: the 1:1 (verify) threshold of a collection and its calibration,
and ``find``'s open-set operating point (see :mod:`.open_set`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from ..calibration import (
    DEFAULT_FAR,
    CalibrationRun,
    InForce,
    calibrate_pairset,
    collection_pairs,
    collection_threshold_in_force,
    model_threshold_in_force,
    save_calibration,
)
from ..calibration.open_set import OpenSetEstimate, check_fpir
from ..config import Settings
from ..imaging import ImageInput
from ..store import CollectionRecord, Repository
from ..types import OperatingPoint
from .galleries import Galleries
from .open_set import OpenSetPolicy


class ThresholdsMixin:
    settings: Settings
    repo: Repository
    open_set: OpenSetPolicy
    galleries: Galleries

    # Defined by FaceService.
    _coll: Callable[[str | CollectionRecord], CollectionRecord]
    _probe_vectors: Callable[[CollectionRecord, Sequence[ImageInput]], np.ndarray]

    def threshold(self, collection: CollectionRecord) -> float:
        """The collection's 1:1 (verify) threshold; ``find`` uses :meth:`operating_point`."""
        return self.threshold_in_force(collection).threshold

    def _verify_threshold(self, collection: CollectionRecord) -> tuple[float, str]:
        in_force = self.threshold_in_force(collection)
        return in_force.threshold, in_force.source

    def operating_point(
        self,
        collection: str | CollectionRecord,
        fpir: float | None = None,
    ) -> OperatingPoint:
        """The open-set threshold ``find`` applies at ``fpir`` (default: the collection's
        target FPIR, else ``FACEID_TARGET_FPIR``), measured on the gallery itself."""
        return self.open_set.operating_point(self._coll(collection), fpir)

    def calibrate_open_set(
        self,
        collection: str | CollectionRecord,
        *,
        strangers: Sequence[ImageInput] = (),
        max_searches: int | None = None,
        seed: int = 0,
    ) -> OpenSetEstimate:
        """Measure the collection's open-set operating points now (``find`` also does this on
        first use and when the gallery has grown or shrunk by the recalibration factor).
        ``strangers``: photos of people certainly not enrolled, searched as well; they are kept
        for later recalibrations."""
        coll = self._coll(collection)
        vectors = self._probe_vectors(coll, strangers) if strangers else None
        return self.open_set.calibrate(coll, vectors, max_searches=max_searches, seed=seed)

    def set_target_fpir(
        self, collection: str | CollectionRecord, fpir: float | None
    ) -> CollectionRecord:
        """The FPIR ``find`` aims at for this collection (None: the settings' default)."""
        coll = self._coll(collection)
        record = self.repo.set_target_fpir(coll.id, None if fpir is None else check_fpir(fpir))
        self.galleries.notify_changed(record)
        return record

    def _calibration_in_force(self, model_tag: str) -> InForce | None:
        """The newest model-wide calibration of a model (for ``pipeline(...).verify``)."""
        return model_threshold_in_force(self.repo, model_tag)

    def threshold_in_force(self, collection: CollectionRecord) -> InForce:
        """The collection's 1:1 threshold and its source (see ``calibration.store``)."""
        return collection_threshold_in_force(self.repo, collection, self.settings)

    def calibrate_collection(
        self,
        collection: str | CollectionRecord,
        target_far: float = DEFAULT_FAR,
        *,
        max_pairs: int = 20_000,
        n_boot: int = 1000,
        seed: int = 0,
        store: bool = True,
        force: bool = False,
    ) -> CalibrationRun:
        """Calibrate on the collection's own identities; stored, it becomes its threshold
        (``force`` stores one with too few impostor pairs to measure its FAR)."""
        coll = self._coll(collection)
        pairs = collection_pairs(self.repo, coll.id, max_pairs=max_pairs, seed=seed)
        cal = calibrate_pairset(pairs, coll.model_tag, target_far=target_far, n_boot=n_boot)
        record = save_calibration(self.repo, cal, coll.id, force=force) if store else None
        if record is not None:
            self.galleries.notify_changed(coll)
        return CalibrationRun(cal, pairs, record)
