"""``faceid calibrate``: the threshold at a target false-accept rate, from labelled pairs."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import typer
from rich.table import Table

from ..config import get_settings
from .app import app, console, print_json


@app.command("calibrate")
def calibrate_command(
    pairs: Path = typer.Option(
        None, "--pairs", help="an LFW-format pairs.txt (default: the shared LFW View-2 pairs)"
    ),
    csv_path: Path = typer.Option(None, "--csv", help="a CSV of image1,image2,same"),
    collection: str = typer.Option(
        None, "--collection", help="a collection: genuine pairs within identities, impostor across"
    ),
    far: float = typer.Option(1e-3, "--far", help="target false-accept rate"),
    fpir: float = typer.Option(
        None,
        "--fpir",
        help="with --collection: calibrate find's open-set operating point instead, and make "
        "this FPIR the collection's target",
    ),
    strangers: Path = typer.Option(
        None,
        "--strangers",
        help="with --fpir: photos of people not enrolled, as DIR/<person>/*.jpg",
    ),
    out: Path = typer.Option(None, "--out", help="folder for the JSON report and PNG plots"),
    detector: str = typer.Option(None, "--detector"),
    embedder: str = typer.Option(None, "--embedder"),
    workers: int = typer.Option(2, help="processes for embedding images"),
    folds: str = typer.Option("", help="LFW: comma-separated fold numbers (1-based)"),
    max_pairs: int = typer.Option(20_000, help="collection: most pairs of each kind"),
    n_boot: int = typer.Option(1000, "--bootstrap", help="bootstrap resamples"),
    seed: int = typer.Option(0, help="seed for sampling and the bootstrap"),
    tenant: str = typer.Option("default", help="collection: its tenant"),
    plots: bool = typer.Option(True, "--plots/--no-plots"),
    store: bool = typer.Option(True, "--store/--no-store", help="store it in the database"),
    force: bool = typer.Option(
        False, "--force", help="store it even with too few impostor pairs to measure the FAR"
    ),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Pick the threshold at a target FAR (bootstrap 95% CIs), fit P(same | distance), write a
    report with ROC/DET/histogram plots, and store it: verify and find then use it."""
    from ..calibration import (
        CalibrationRun,
        calibrate_pairset,
        csv_pairs,
        describe,
        lfw_pairs,
        save_calibration,
        write_report,
    )
    from ..pipeline import FacePipeline
    from ..service import FaceService

    if sum(x is not None for x in (pairs, csv_path, collection)) > 1:
        raise typer.BadParameter("give at most one of --pairs, --csv, --collection")
    if fpir is not None or strangers is not None:
        if collection is None or fpir is None:
            raise typer.BadParameter(
                "--fpir (and --strangers) calibrate a collection: give --collection"
            )
        calibrate_open_set(collection, fpir, strangers, seed, tenant, json_out)
        return
    settings = get_settings()
    with FaceService.embedded(settings) as service:
        if collection is not None:
            run = service.for_tenant(tenant).calibrate_collection(
                collection,
                far,
                max_pairs=max_pairs,
                n_boot=n_boot,
                seed=seed,
                store=store,
                force=force,
            )
        else:
            with FacePipeline(detector, embedder, workers=workers) as pipeline:
                if csv_path is not None:
                    pairset = csv_pairs(pipeline, csv_path, settings.cache_dir)
                else:
                    fold_list = [int(f) - 1 for f in folds.split(",") if f.strip()] or None
                    pairset = lfw_pairs(
                        pipeline,
                        pairs or settings.lfw_dir / "pairs.txt",
                        settings.cache_dir,
                        folds=fold_list,
                    )
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

    cal = run.calibration
    if json_out:
        print_json({**cal.to_dict(), "files": [str(f) for f in files]})
        return
    table = Table(title=f"calibration of {cal.model} on {cal.dataset}")
    table.add_column("figure")
    table.add_column("value")
    lo, hi = cal.threshold_ci
    table.add_row(
        f"threshold @ FAR {cal.target_far:g}",
        f"{cal.threshold:.4f} (95% CI {lo:.4f} – {hi:.4f})",
    )
    table.add_row("measured FAR", f"{cal.far:.5f}")
    table.add_row("TAR", f"{cal.tar:.4f} (95% CI {cal.tar_ci[0]:.4f} – {cal.tar_ci[1]:.4f})")
    table.add_row("ROC AUC", f"{cal.auc:.5f}")
    table.add_row("pairs", f"{cal.n_genuine} genuine, {cal.n_impostor} impostor")
    a, b = cal.logistic
    table.add_row("P(same | d)", f"1 / (1 + exp(-({a:.3f} {b:+.3f}·d)))")
    table.add_row("confidence at threshold", f"{cal.confidence(cal.threshold):.3f}")
    if "warning" in cal.details:
        table.add_row("warning", str(cal.details["warning"]))
    table.add_row("stored", describe(run.record) if run.record is not None else "no (--no-store)")
    table.add_row("report", str(files[0].parent))
    console.print(table)


def calibrate_open_set(
    collection: str, fpir: float, strangers: Path | None, seed: int, tenant: str, json_out: bool
) -> None:
    """Measure find's operating points on the collection's own gallery (leaving one identity
    out, plus the strangers' photos) and set its target FPIR."""
    from ..service import FaceService
    from ..service.folder import list_folder

    photos = [] if strangers is None else [path for _, path in list_folder(strangers)]
    with FaceService.embedded() as service:
        scoped = service.for_tenant(tenant)
        scoped.set_target_fpir(collection, fpir)
        estimate = scoped.calibrate_open_set(collection, strangers=photos, seed=seed)
        points = {f: scoped.operating_point(collection, f) for f in (fpir, 1e-3, 1e-2, 1e-1)}
    if json_out:
        print_json(
            {
                "collection": collection,
                "target_fpir": fpir,
                "gallery_identities": estimate.gallery_identities,
                "gallery_faces": estimate.gallery_faces,
                "searches": estimate.n_searches,
                "strangers": estimate.strangers,
                "operating_points": {f"{f:g}": p.to_dict() for f, p in points.items()},
            }
        )
        return
    table = Table(
        title=f"open-set calibration of {collection}: {estimate.gallery_identities:,} identities"
    )
    for column in ("FPIR", "distance threshold", "source"):
        table.add_column(column)
    for f, point in points.items():
        table.add_row(
            f"{f:g}" + (" (target)" if f == fpir else ""), f"{point.threshold:.4f}", point.source
        )
    console.print(table)
