"""``faceid calibrate`` as calls: the 1:1 threshold at a target false-accept rate from labelled
pairs (LFW, a CSV or a collection), stored and written as a report
(:func:`calibrate_threshold`); and find's open-set operating points on a collection's own
gallery (:func:`calibrate_collection_open_set`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from ..calibration import (
    CalibrationRun,
    calibrate_pairset,
    csv_pairs,
    describe,
    lfw_pairs,
    save_calibration,
    write_report,
)
from ..calibration.open_set import OpenSetEstimate
from ..config import Settings
from ..pipeline import FacePipeline
from ..types import DEFAULT_TENANT, OperatingPoint
from .facade import FaceService
from .folder import list_folder


@dataclass(frozen=True)
class PairSource:
    """Where the labelled pairs come from: a collection (genuine pairs within identities,
    impostors across), else a CSV of image1,image2,same, else LFW-format pairs (default: the
    shared LFW View-2 pairs)."""

    collection: str | None = None
    csv: Path | None = None
    lfw_pairs: Path | None = None
    folds: list[int] | None = None  # LFW: the 0-based folds to use (None: all)
    max_pairs: int = 20_000  # collection: most pairs of each kind
    tenant: str = DEFAULT_TENANT  # collection: its tenant


@dataclass(frozen=True)
class ThresholdCalibration:
    """A calibration run (stored unless asked not to) and the report files written for it."""

    run: CalibrationRun
    files: list[Path]


def calibrate_threshold(
    settings: Settings,
    source: PairSource,
    far: float,
    *,
    detector: str | None = None,
    embedder: str | None = None,
    workers: int = 2,
    n_boot: int = 1000,
    seed: int = 0,
    store: bool = True,
    force: bool = False,
    out: Path | None = None,
    plots: bool = True,
) -> ThresholdCalibration:
    """The threshold at ``far`` with bootstrap intervals and P(same | distance), stored (with
    ``store``; ``force`` stores it even with too few impostor pairs to measure ``far``) and
    written with its plots to ``out`` (default ``<data_dir>/calibrations/<id>``)."""
    with FaceService.embedded(settings) as service:
        if source.collection is not None:
            run = service.for_tenant(source.tenant).calibrate_collection(
                source.collection,
                far,
                max_pairs=source.max_pairs,
                n_boot=n_boot,
                seed=seed,
                store=store,
                force=force,
            )
        else:
            with FacePipeline(detector, embedder, workers=workers) as pipeline:
                pairset = _pairs(pipeline, source, settings)
                extra = {"detector": pipeline.detector.name}
                cal = calibrate_pairset(
                    pairset, pipeline.model, target_far=far, n_boot=n_boot, seed=seed, extra=extra
                )
            record = save_calibration(service.repo, cal, force=force) if store else None
            run = CalibrationRun(cal, pairset, record)
        if run.record is not None:
            run.calibration.details["calibration_id"] = run.record.id
            run.calibration.details["in_force_as"] = describe(run.record)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        out_dir = out or settings.data_dir / "calibrations" / (
            f"{run.record.id:04d}" if run.record is not None else stamp
        )
        files = write_report(run.calibration, run.pairs, out_dir, plots=plots)
    return ThresholdCalibration(run, files)


def _pairs(pipeline: FacePipeline, source: PairSource, settings: Settings):  # -> PairSet
    if source.csv is not None:
        return csv_pairs(pipeline, source.csv, settings.cache_dir)
    return lfw_pairs(
        pipeline,
        source.lfw_pairs or settings.lfw_dir / "pairs.txt",
        settings.cache_dir,
        folds=source.folds,
    )


@dataclass(frozen=True)
class OpenSetCalibration:
    """A collection's measured open-set figures and find's operating point at each FPIR."""

    collection: str
    target_fpir: float
    estimate: OpenSetEstimate
    points: dict[float, OperatingPoint]  # the target first, then 1e-3, 1e-2, 1e-1

    def to_dict(self) -> dict[str, object]:
        return {
            "collection": self.collection,
            "target_fpir": self.target_fpir,
            "gallery_identities": self.estimate.gallery_identities,
            "gallery_faces": self.estimate.gallery_faces,
            "searches": self.estimate.n_searches,
            "strangers": self.estimate.strangers,
            "operating_points": {f"{f:g}": p.to_dict() for f, p in self.points.items()},
        }


def calibrate_collection_open_set(
    settings: Settings | None,
    collection: str,
    fpir: float,
    strangers: Path | None = None,
    *,
    seed: int = 0,
    tenant: str = DEFAULT_TENANT,
) -> OpenSetCalibration:
    """Measure find's operating points on the collection's own gallery (leaving one identity
    out, plus the photos of people not enrolled under ``strangers``, DIR/<person>/*.jpg) and
    make ``fpir`` its target."""
    photos = [] if strangers is None else [path for _, path in list_folder(strangers)]
    with FaceService.embedded(settings) as service:
        scoped = service.for_tenant(tenant)
        scoped.set_target_fpir(collection, fpir)
        estimate = scoped.calibrate_open_set(collection, strangers=photos, seed=seed)
        points = {f: scoped.operating_point(collection, f) for f in (fpir, 1e-3, 1e-2, 1e-1)}
    return OpenSetCalibration(collection, fpir, estimate, points)
