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
    from ..eval.lfw import evaluate, read_pairs

    settings = get_settings()
    fold_list = [int(f) - 1 for f in folds.split(",") if f.strip()] or None
    pairs = read_pairs(settings.lfw_dir / "pairs.txt")
    n_images = len(
        {p.image1 for p in pairs if fold_list is None or p.fold in fold_list}
        | {p.image2 for p in pairs if fold_list is None or p.fold in fold_list}
    )
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
