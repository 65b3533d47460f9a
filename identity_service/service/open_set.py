"""Which operating point ``find`` uses for a collection, and when it is measured again.

Each collection keeps its newest open-set calibration (see
:mod:`identity_service.calibration.open_set`). ``find`` measures one on first use, and again
whenever the gallery has grown or shrunk by ``FACEID_OPEN_SET_RECALIBRATE_FACTOR`` since (its
FPIR grows about in proportion to the gallery). A node keeps the estimate it last read in
memory; which one is newest, and the 1:1 threshold it falls back to, come from the collection's
state in memory (:mod:`.live`), which a ``config`` entry of the index log refreshes.
"""

from __future__ import annotations

import base64
import math
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import numpy as np

from ..calibration.open_set import (
    MIN_EXCEEDANCES,
    OpenSetEstimate,
    OperatingPoint,
    check_fpir,
    leave_one_out_scores,
)
from ..config import Settings
from ..models import MODELS
from ..store import CollectionRecord, OpenSetRecord, Repository
from .galleries import Galleries

VerifyThreshold = Callable[[CollectionRecord], tuple[float, str]]


def _pack(vectors: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(vectors, np.float32).tobytes()).decode()


def _unpack(text: str, dim: int) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), np.float32).reshape(-1, dim)


class OpenSetPolicy:
    def __init__(
        self,
        repo: Repository,
        galleries: Galleries,
        settings: Settings,
        verify_threshold: VerifyThreshold,
    ) -> None:
        self._repo = repo
        self._galleries = galleries
        self._settings = settings
        self._verify_threshold = verify_threshold
        self._cache: dict[int, tuple[int, OpenSetEstimate]] = {}  # collection -> (record, it)
        # (collection, target) -> (estimate, its point): reading a point sorts every score
        self._points: dict[tuple[int, float], tuple[OpenSetEstimate, OperatingPoint | None]] = {}
        self._locks: dict[int, threading.Lock] = {}
        self._guard = threading.Lock()

    def target(self, coll: CollectionRecord, fpir: float | None = None) -> float:
        if fpir is not None:
            return check_fpir(fpir)
        if coll.target_fpir is not None:
            return coll.target_fpir
        return self._settings.index.target_fpir

    def operating_point(self, coll: CollectionRecord, fpir: float | None = None) -> OperatingPoint:
        """The threshold ``find`` applies at ``fpir`` (default: the collection's target)."""
        target = self.target(coll, fpir)
        faces = len(self._galleries.fresh(coll))
        if faces == 0:
            threshold, source = self._fallback(coll)
            return OperatingPoint(threshold, target, 0, f"empty gallery; {source}")
        estimate = self.in_force(coll, faces)
        point = self._point(coll, estimate, target)
        if point is not None:
            return point
        threshold, source = self._fallback(coll)
        return OperatingPoint(
            threshold,
            target,
            estimate.gallery_identities,
            f"1:1 verify threshold ({source}): {estimate.n_searches:,} searches at "
            f"{estimate.gallery_identities:,} identities are too few for FPIR {target:g} "
            f"(at least {math.ceil(MIN_EXCEEDANCES / target):,}) and model {coll.model} has "
            "no open-set prior; add known strangers (faceid calibrate --strangers) or enroll more",
        )

    def in_force(self, coll: CollectionRecord, faces: int | None = None) -> OpenSetEstimate:
        """The newest estimate, measured again first if the gallery moved by the factor."""
        faces = len(self._galleries.fresh(coll)) if faces is None else faces
        with self._lock(coll.id):
            estimate = self._newest(coll)
            factor = self._settings.index.open_set_recalibrate_factor
            if estimate is None or not (
                estimate.gallery_faces / factor < faces < estimate.gallery_faces * factor
            ):
                estimate = self.calibrate(coll)
            return estimate

    def calibrate(
        self,
        coll: CollectionRecord,
        strangers: np.ndarray | None = None,
        *,
        max_searches: int | None = None,
        seed: int = 0,
    ) -> OpenSetEstimate:
        """Measure and store the collection's non-mated scores: a seeded sample of its faces
        searched leaving their identity out, plus ``strangers`` (embeddings of people not
        enrolled; without them, those of the previous calibration are searched again)."""
        follower = self._galleries.fresh(coll, force=True)
        face_ids, owners = self._repo.face_identities(coll.id)
        if strangers is None:
            strangers = self._previous_strangers(coll)
        limit = max_searches or self._settings.index.open_set_max_searches
        scores = self._leave_one_out(coll, follower, face_ids, owners, limit, seed)
        if len(strangers) and len(follower):
            sims, _ = follower.search(np.asarray(strangers, np.float32), 1)
            scores = np.concatenate([scores, sims[:, 0]])
        estimate = OpenSetEstimate(
            model=coll.model_tag,
            gallery_faces=len(face_ids),
            gallery_identities=len(np.unique(owners)),
            scores=np.sort(scores)[::-1],
            prior=self._prior(coll),
            strangers=len(strangers),
            created=datetime.now(UTC).isoformat(timespec="seconds"),
            details={"seed": seed, "max_searches": limit},
        )
        report = estimate.to_report()
        if len(strangers):
            report["stranger_vectors"] = _pack(strangers)
        record = self._repo.add_open_set_calibration(
            coll.id,
            coll.model_tag,
            estimate.source,
            estimate.gallery_faces,
            estimate.gallery_identities,
            estimate.n_searches,
            report,
        )
        self._cache[coll.id] = (record.id, estimate)
        self._galleries.saw_open_set(coll, record.id)
        return estimate

    def _leave_one_out(
        self,
        coll: CollectionRecord,
        follower: Any,  # index.IndexFollower
        face_ids: np.ndarray,
        owners: np.ndarray,
        limit: int,
        seed: int,
    ) -> np.ndarray:
        """The top scores of a seeded sample of at most ``limit`` gallery faces, each searched
        with its own identity left out (none when the gallery holds one identity)."""
        rng = np.random.default_rng(seed)
        pick = np.sort(rng.choice(len(face_ids), min(limit, len(face_ids)), replace=False))
        identities, per_identity = np.unique(owners, return_counts=True)
        if len(identities) <= 1:
            return np.zeros(0)
        own = per_identity[np.searchsorted(identities, owners[pick])]

        def owner_of(ids: np.ndarray) -> np.ndarray:
            pos = np.clip(np.searchsorted(face_ids, ids), 0, len(face_ids) - 1)
            return np.where(face_ids[pos] == ids, owners[pos], -1)

        return leave_one_out_scores(
            self._repo.embeddings_of(coll.id, face_ids[pick].tolist()),
            owners[pick],
            own,
            follower.search,
            owner_of,
            len(follower),
        )

    def forget(self, collection_id: int) -> None:
        self._cache.pop(collection_id, None)

    # -- internals -------------------------------------------------------------------------
    def _lock(self, collection_id: int) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(collection_id, threading.Lock())

    def _prior(self, coll: CollectionRecord) -> tuple[tuple[float, float], ...]:
        spec = MODELS.get(coll.model)
        return spec.impostor_tail if spec is not None and spec.version == coll.model_version else ()

    def _point(
        self, coll: CollectionRecord, estimate: OpenSetEstimate, target: float
    ) -> OperatingPoint | None:
        cached = self._points.get((coll.id, target))
        if cached is not None and cached[0] is estimate:
            return cached[1]
        point = estimate.operating_point(target)
        if len(self._points) > 1000:
            self._points.clear()
        self._points[(coll.id, target)] = (estimate, point)
        return point

    def _fallback(self, coll: CollectionRecord) -> tuple[float, str]:
        """The collection's 1:1 threshold and its source (cached with the collection)."""
        return self._galleries.verify_threshold(coll, self._verify_threshold)

    def _newest(self, coll: CollectionRecord) -> OpenSetEstimate | None:
        newest = self._galleries.open_set_id(coll)
        if newest is None:
            return None
        cached = self._cache.get(coll.id)
        if cached is not None and cached[0] == newest:
            return cached[1]
        record = self._repo.open_set_in_force(coll.id, coll.model_tag)
        assert record is not None
        estimate = self._from_record(coll, record)
        self._cache[coll.id] = (record.id, estimate)
        return estimate

    def _from_record(self, coll: CollectionRecord, record: OpenSetRecord) -> OpenSetEstimate:
        return OpenSetEstimate.from_report(
            record.model,
            record.gallery_faces,
            record.gallery_identities,
            record.report,
            prior=self._prior(coll),
        )

    def _previous_strangers(self, coll: CollectionRecord) -> np.ndarray:
        record = self._repo.open_set_in_force(coll.id, coll.model_tag)
        packed = record.report.get("stranger_vectors") if record else None
        return _unpack(str(packed), coll.dim) if packed else np.zeros((0, coll.dim), np.float32)
