"""``faceid learn``: train, evaluate, export, install and plot embedding adapters, and train a
small face CNN end to end on aligned crops (``--arch cnn``; training needs
``faceid[learn]``; torch is imported inside the commands so the rest of the CLI, ``install``
included, works without it)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from .app import app, console, err_console, print_json

learn_app = typer.Typer(
    help="Metric learning: embedding adapters and a small face CNN.", no_args_is_help=True
)
app.add_typer(learn_app, name="learn")

ROW = ("map_at_r", "precision_at_1", "r_precision", "verification_accuracy", "tar_at_far")
HEADERS = ("MAP@R", "P@1", "R-prec", "verif acc", "TAR@FAR")


def _table(rows: dict[str, dict], title: str) -> Table:
    table = Table(title=title)
    table.add_column("model")
    for col in HEADERS:
        table.add_column(col, justify="right")
    for name, scores in rows.items():
        table.add_row(name, *(f"{scores[c]:.4f}" for c in ROW))
    return table


@learn_app.command("train")
def train_command(
    out: Path = typer.Option(None, "--out", "-o", help="run folder (default: <arch>-run)"),
    arch: str = typer.Option(
        "adapter", help="adapter (on stored embeddings) or cnn (FaceCNN on aligned face crops)"
    ),
    collection: str = typer.Option(None, "--collection", "-c", help="adapter: a collection"),
    lfw_cache: Path = typer.Option(None, help="adapter: LFW embedding cache (default: newest)"),
    images: Path = typer.Option(
        None, help="cnn: DIR/<person>/*.jpg (default: the shared LFW images)"
    ),
    recipe: str = typer.Option("triplet-semi-hard", help="loss-miner, e.g. triplet-hardest"),
    margin: float = typer.Option(0.1),
    epochs: int = typer.Option(5),
    classes: int = typer.Option(16, help="identities per batch"),
    samples: int = typer.Option(8, help="images per identity per batch"),
    lr: float = typer.Option(3e-4),
    hidden: int = typer.Option(256, help="adapter: hidden width"),
    width: int = typer.Option(32, help="cnn: channels of the first block (x2 per block)"),
    dim: int = typer.Option(128, help="cnn: embedding dimension"),
    max_identities: int = typer.Option(None, help="cnn: first N people (by name) only"),
    max_images_per_identity: int = typer.Option(None, help="cnn: at most N images a person"),
    augment: bool = typer.Option(True, help="cnn: random flip and crop jitter on the device"),
    baseline: bool = typer.Option(True, help="cnn: also score the pipeline's embedder"),
    test_fraction: float = typer.Option(0.5, help="identities held out for one-shot eval"),
    seed: int = typer.Option(0),
    device: str = typer.Option("cpu", help="cpu, cuda or cuda:N"),
    resume: bool = typer.Option(False, help="continue from OUT/checkpoint.pt"),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    # Over 60 lines only for the typer options in its signature; the body is under ~40.
    """Train an adapter or a CNN with online mining; write checkpoint.pt, the .onnx and
    report.json (threshold and one-shot scores on held-out identities)."""
    from ..training.metric.device import DeviceUnavailableError
    from ..training.metric.run import ARCHS, TrainOptions, train_embedding

    if arch not in ARCHS:
        raise typer.BadParameter("--arch must be adapter or cnn")
    options = TrainOptions(
        out=out or Path(f"{arch}-run"),
        arch=arch,
        collection=collection,
        lfw_cache=lfw_cache,
        images=images,
        recipe=recipe,
        margin=margin,
        epochs=epochs,
        classes=classes,
        samples=samples,
        lr=lr,
        hidden=hidden,
        width=width,
        dim=dim,
        max_identities=max_identities,
        max_images_per_identity=max_images_per_identity,
        augment=augment,
        baseline=baseline,
        test_fraction=test_fraction,
        seed=seed,
        device=device,
        resume=resume,
    )
    try:
        run = train_embedding(options, on_epoch=_print_epoch)
    except DeviceUnavailableError as exc:
        err_console.print(f"[red]error[/red] {escape(f'[{exc.code}] {exc.message}')}")
        raise typer.Exit(1) from None
    if json_out:
        print_json(run.report)
        return
    console.print(_table({k: v for k, v in run.scores.items() if v}, "one-shot test"))
    console.print(f"{arch}: {run.path}")


def _print_epoch(log) -> None:
    console.print(f"epoch {log.epoch}: loss {log.loss:.4f}  MAP@R {log.metrics['map_at_r']:.4f}")


@learn_app.command("eval")
def eval_command(
    adapter: Path = typer.Option(None, help="adapter.onnx to compare with the frozen backbone"),
    collection: str = typer.Option(None, "--collection", "-c"),
    lfw_cache: Path = typer.Option(None),
    test_fraction: float = typer.Option(0.5),
    seed: int = typer.Option(0),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """One-shot scores (MAP@R, P@1, R-precision, verification) on the held-out identities."""
    from ..embed.adapters import OnnxAdapter
    from ..training.metric.data import identity_split
    from ..training.metric.evaluate import evaluate
    from ..training.metric.run import training_set

    split = identity_split(training_set(collection, lfw_cache), test_fraction, seed)
    rows = {"frozen": evaluate(split.test.features, split.test.labels).to_dict()}
    if adapter:
        model = OnnxAdapter(adapter)
        rows[f"adapter-{model.sha8}"] = evaluate(
            model(split.test.features), split.test.labels
        ).to_dict()
    if json_out:
        print_json({"split": split.sizes(), "scores": rows})
        return
    console.print(_table(rows, f"one-shot test ({split.sizes()})"))


@learn_app.command("plot")
def plot_command(
    out: Path = typer.Option(Path("embeddings-2d.png"), "--out", "-o"),
    adapter: Path = typer.Option(None, help="plot adapted embeddings instead"),
    identities: int = typer.Option(10, help="the test identities with the most images"),
    collection: str = typer.Option(None, "--collection", "-c"),
    lfw_cache: Path = typer.Option(None),
    seed: int = typer.Option(0),
) -> None:
    """2-D PCA scatter of test-identity embeddings, one colour per identity (PNG)."""
    import numpy as np

    from ..embed.adapters import OnnxAdapter
    from ..training.metric.data import identity_split
    from ..training.metric.plot import scatter_2d
    from ..training.metric.run import training_set

    test = identity_split(training_set(collection, lfw_cache), 0.5, seed).test
    top = np.argsort(-np.bincount(test.labels))[:identities]
    chosen = test.subset(np.isin(test.labels, top))
    x = OnnxAdapter(adapter)(chosen.features) if adapter else chosen.features
    title = f"{'adapter' if adapter else 'frozen backbone'}: {identities} test identities (PCA)"
    console.print(f"wrote {scatter_2d(x, chosen.labels, chosen.names, out, title)}")


@learn_app.command("install")
def install_command(
    source: Path = typer.Argument(..., help="a `learn train` run folder or an exported .onnx"),
    threshold: float = typer.Option(
        None, help="cosine-distance threshold (default: the run's report.json)"
    ),
    base: str = typer.Option(
        None, help="base embedder it was trained on (default: the report's, else FACEID_EMBEDDER)"
    ),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Install an adapter into FACEID_ADAPTER_DIR; print the model name collections use."""
    from ..config import get_settings
    from ..embed.adapter_install import install_adapter

    settings = get_settings()
    result = install_adapter(source, settings, threshold=threshold, base=base)
    adapter = result.adapter
    if json_out:
        print_json({"model": adapter.name, "onnx": str(result.onnx), **asdict(adapter)})
        return
    state = "already installed" if result.already_installed else "installed"
    console.print(f"{state}: {result.onnx} (sidecar {result.sidecar.name})")
    if adapter.threshold is None:
        console.print("[yellow]no threshold: pass --threshold or calibrate the collection[/yellow]")
    else:
        console.print(f"threshold {adapter.threshold:.4f} ({adapter.threshold_source})")
    console.print(f"model: {adapter.name}")
