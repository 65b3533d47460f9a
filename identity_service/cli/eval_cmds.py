"""``faceid eval lfw``: the LFW verification protocol on the shared pairs."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.progress import Progress
from rich.table import Table

from ..config import get_settings
from ..pipeline import FacePipeline
from .app import app, console, print_json

eval_app = typer.Typer(help="Measure accuracy on labelled data.", no_args_is_help=True)
app.add_typer(eval_app, name="eval")


@eval_app.command("lfw")
def eval_lfw(
    detector: str = typer.Option(None, "--detector"),
    embedder: str = typer.Option(None, "--embedder"),
    workers: int = typer.Option(2, help="processes for embedding"),
    far: float = typer.Option(1e-3, help="false-accept rate for the TAR figure"),
    folds: str = typer.Option("", help="comma-separated fold numbers (1-based); default all"),
    no_face: str = typer.Option("centre", help="'centre' (assume the centred face) or 'error'"),
    output: Path = typer.Option(None, "--output", "-o", help="write the JSON report here"),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """LFW protocol: threshold chosen on the other folds, mean ± std accuracy, AUC, TAR@FAR."""
    from ..training.eval.lfw import evaluate, images_in_pairs

    settings = get_settings()
    fold_list = [int(f) - 1 for f in folds.split(",") if f.strip()] or None
    n_images = images_in_pairs(settings.lfw_dir, fold_list)
    with (
        FacePipeline(detector, embedder, workers=workers) as pipeline,
        Progress(console=console, transient=True) as bar,
    ):
        task = bar.add_task("embedding LFW images (cached)", total=n_images)
        report = evaluate(
            pipeline,
            settings.lfw_dir,
            settings.cache_dir,
            far=far,
            on_no_face=no_face,
            folds=fold_list,
            progress=lambda n: bar.advance(task, n),
        )
    data = report.to_dict()
    if output:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(data, indent=2) + "\n")
    if json_out:
        print_json(data)
        return
    _show_lfw(report)


def _show_lfw(report) -> None:  # training.eval.lfw.LfwReport
    table = Table(title=f"LFW ({report.n_folds} folds, {report.n_pairs} pairs): {report.model}")
    table.add_column("figure")
    table.add_column("value")
    table.add_row("accuracy", f"{report.mean_accuracy:.4f} ± {report.std_accuracy:.4f}")
    table.add_row("per fold", " ".join(f"{a:.4f}" for a in report.fold_accuracies))
    table.add_row("ROC AUC", f"{report.auc:.5f}")
    op = report.tar_at_far
    table.add_row(f"TAR @ FAR {op.far_target:g}", f"{op.tar:.4f} (threshold {op.threshold:.4f})")
    table.add_row("best threshold, all folds", f"{report.best_threshold_all_folds:.4f}")
    table.add_row(
        "images without a detected face",
        f"{report.no_face_images} of {report.images} ({report.no_face_handling})",
    )
    table.add_row("undecodable images", str(report.error_images))
    console.print(table)


DEFAULT_IDENTIFICATION_MODELS = "dlib-resnet-v1-tta8,mobilefacenet-192,fused-dlib-mobilefacenet"


@eval_app.command("identification")
def eval_identification(
    models: str = typer.Option(DEFAULT_IDENTIFICATION_MODELS, help="comma-separated embedders"),
    sizes: str = typer.Option(
        "1000,3865,5000,100000000",
        help="gallery sizes, capped at the largest (3,865: every LFW identity, no UTKFace)",
    ),
    fpir: float = typer.Option(1e-2, help="target FPIR of the calibrated operating point"),
    workers: int = typer.Option(2, help="processes for embedding"),
    peer: bool = typer.Option(True, help="also run face_recognition's 0.6 rule"),
    output: Path = typer.Option(Path("eval-identification"), "--output", "-o"),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """The 1:N protocol (FRVT-style) on the shared LFW and UTKFace images: rank-1/5, DIR at
    FPIR 1e-3/1e-2/1e-1, and the calibrated operating point's measured FPIR against its
    target; writes identification.json and identification_det.png."""
    from ..training.eval.identification_run import run, write

    report = run(
        get_settings(),
        [m.strip() for m in models.split(",") if m.strip()],
        [int(s) for s in sizes.split(",") if s.strip()],
        target_fpir=fpir,
        workers=workers,
        peer=peer,
        progress=lambda text: console.print(f"[dim]{text}[/dim]"),
    )
    paths = write(report, output)
    if json_out:
        print_json(report.to_dict())
        return
    _show_identification(report, fpir)
    console.print(f"written: {', '.join(str(p) for p in paths)}")


def _show_identification(report, fpir: float) -> None:  # training.eval.identification_run
    table = Table(title=f"1:N identification (target FPIR {fpir:g})")
    for column in ("model", "gallery", "rank-1", "rank-5", "DIR@1e-3", "DIR@1e-2", "DIR@1e-1"):
        table.add_column(column)
    table.add_column("calibrated: FPIR / DIR")
    for model in report.models:
        for size in model.sizes:
            cal = size.calibrated
            table.add_row(
                model.model,
                f"{size.gallery_identities:,}",
                f"{size.rank1:.4f}",
                f"{size.rank5:.4f}",
                *(f"{size.dir_at_fpir[k]:.4f}" for k in ("0.001", "0.01", "0.1")),
                f"{cal['measured_fpir']:.4f} / {cal['dir']:.4f}",
            )
    for size in (report.peer or {}).get("sizes", []):  # type: ignore[union-attr]
        table.add_row(
            "peer: face_recognition (0.6)",
            f"{size['gallery_identities']:,}",
            f"{size['rank1']:.4f}",
            "",
            "",
            "",
            "",
            f"{size['fpir_at_rule']:.4f} / {size['dir_at_rule']:.4f}",
        )
    console.print(table)
