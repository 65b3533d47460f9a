"""``faceid calibrate``: the threshold at a target false-accept rate, from labelled pairs."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from ..config import get_settings
from .app import app, console, print_json

if TYPE_CHECKING:
    from ..service.calibrate import OpenSetCalibration, ThresholdCalibration


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
    # Over 60 lines only for the typer options in its signature; the body is under ~40.
    """Pick the threshold at a target FAR (bootstrap 95% CIs), fit P(same | distance), write a
    report with ROC/DET/histogram plots, and store it: verify and find then use it."""
    from ..service.calibrate import (
        PairSource,
        calibrate_collection_open_set,
        calibrate_threshold,
    )

    if sum(x is not None for x in (pairs, csv_path, collection)) > 1:
        raise typer.BadParameter("give at most one of --pairs, --csv, --collection")
    if fpir is not None or strangers is not None:
        if collection is None or fpir is None:
            raise typer.BadParameter(
                "--fpir (and --strangers) calibrate a collection: give --collection"
            )
        measured = calibrate_collection_open_set(
            get_settings(), collection, fpir, strangers, seed=seed, tenant=tenant
        )
        _show_open_set(measured, json_out)
        return
    source = PairSource(
        collection=collection,
        csv=csv_path,
        lfw_pairs=pairs,
        folds=[int(f) - 1 for f in folds.split(",") if f.strip()] or None,
        max_pairs=max_pairs,
        tenant=tenant,
    )
    result = calibrate_threshold(
        get_settings(),
        source,
        far,
        detector=detector,
        embedder=embedder,
        workers=workers,
        n_boot=n_boot,
        seed=seed,
        store=store,
        force=force,
        out=out,
        plots=plots,
    )
    _show_threshold(result, json_out)


def _show_threshold(result: ThresholdCalibration, json_out: bool) -> None:
    from ..calibration import describe

    cal, record, files = result.run.calibration, result.run.record, result.files
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
    table.add_row("stored", describe(record) if record is not None else "no (--no-store)")
    table.add_row("report", str(files[0].parent))
    console.print(table)


def _show_open_set(measured: OpenSetCalibration, json_out: bool) -> None:
    if json_out:
        print_json(measured.to_dict())
        return
    table = Table(
        title=f"open-set calibration of {measured.collection}: "
        f"{measured.estimate.gallery_identities:,} identities"
    )
    for column in ("FPIR", "distance threshold", "source"):
        table.add_column(column)
    for f, point in measured.points.items():
        table.add_row(
            f"{f:g}" + (" (target)" if f == measured.target_fpir else ""),
            f"{point.threshold:.4f}",
            point.source,
        )
    console.print(table)
