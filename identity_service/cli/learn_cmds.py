"""``faceid learn``: train, evaluate, export, install and plot embedding adapters, and train a
small face CNN end to end on aligned crops (``--arch cnn``; training needs
``faceid[learn]``; torch is imported inside the commands so the rest of the CLI, ``install``
included, works without it)."""

from __future__ import annotations

import json
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


def _data(collection: str | None, lfw_cache: Path | None):
    from ..training.metric.data import from_collection, load_lfw_cache

    if not collection:
        return load_lfw_cache(lfw_cache)
    from ..service import FaceService

    with FaceService.embedded() as service:
        coll = service.repo.get_collection(collection)
        return from_collection(service.repo, coll.id)


def _base_and_data(collection: str | None, lfw_cache: Path | None) -> tuple[str, str]:
    """The embedder the training vectors came from, and a description of them."""
    from ..config import get_settings

    if not collection:
        from ..training.metric.data import newest_lfw_cache

        # The LFW cache holds embeddings of the default model (bench/identification_lfw.py).
        return get_settings().embedder, f"LFW embedding cache {lfw_cache or newest_lfw_cache()}"
    from ..service import FaceService

    with FaceService.embedded() as service:
        coll = service.repo.get_collection(collection)
        return coll.model, f"collection {collection} ({coll.model_tag})"


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
    """Train an adapter or a CNN with online mining; write checkpoint.pt, the .onnx and
    report.json (threshold and one-shot scores on held-out identities)."""
    from ..training.metric.device import DeviceUnavailableError, resolve_device

    if arch not in ("adapter", "cnn"):
        raise typer.BadParameter("--arch must be adapter or cnn")
    try:
        resolve_device(device)
    except DeviceUnavailableError as exc:
        err_console.print(f"[red]error[/red] {escape(f'[{exc.code}] {exc.message}')}")
        raise typer.Exit(1) from None
    out = out or Path(f"{arch}-run")
    common = dict(
        recipe=recipe,
        margin=margin,
        epochs=epochs,
        classes=classes,
        samples=samples,
        lr=lr,
        test_fraction=test_fraction,
        seed=seed,
        device=device,
        resume=resume,
    )
    if arch == "cnn":
        report = _train_cnn(
            out,
            images,
            common,
            width=width,
            dim=dim,
            augment=augment,
            baseline=baseline,
            max_identities=max_identities,
            max_images_per_identity=max_images_per_identity,
        )
        rows = {"frozen": report["frozen"], f"cnn {recipe}": report["cnn"]}
        path = report["model_path"]
    else:
        report = _train_adapter(out, collection, lfw_cache, hidden, common)
        rows = {"frozen": report["frozen"], recipe: report["adapter"]}
        path = report["adapter_path"]
    if json_out:
        print_json(report)
        return
    console.print(_table({k: v for k, v in rows.items() if v}, "one-shot test"))
    console.print(f"{arch}: {path}")


def _print_epoch(log) -> None:
    console.print(f"epoch {log.epoch}: loss {log.loss:.4f}  MAP@R {log.metrics['map_at_r']:.4f}")


def _train_cnn(out: Path, images: Path | None, common: dict, **options) -> dict:
    from ..config import get_settings
    from ..training.metric.cnn import CnnConfig, train_cnn

    images = images or get_settings().lfw_dir / "images"
    config = CnnConfig(images=images, out=out, **common, **options)
    return train_cnn(config, on_epoch=_print_epoch)


def _train_adapter(
    out: Path, collection: str | None, lfw_cache: Path | None, hidden: int, c: dict
) -> dict:
    import torch

    from ..training.metric.adapter import export_adapter
    from ..training.metric.data import identity_split
    from ..training.metric.evaluate import evaluate
    from ..training.metric.mining import make_loss, make_miner
    from ..training.metric.models import EmbeddingAdapter
    from ..training.metric.train import balanced_sampler, fit

    torch.manual_seed(c["seed"])
    base, data_desc = _base_and_data(collection, lfw_cache)
    split = identity_split(_data(collection, lfw_cache), c["test_fraction"], c["seed"])
    model = EmbeddingAdapter(split.train.features.shape[1], hidden)
    result = fit(
        model,
        make_loss(c["recipe"], c["margin"]),
        make_miner(c["recipe"], c["margin"]),
        balanced_sampler(split.train.labels, c["classes"], c["samples"]),
        split.train,
        epochs=c["epochs"],
        batch_size=c["classes"] * c["samples"],
        lr=c["lr"],
        device=c["device"],
        eval_set=split.test,
        checkpoint=out / "checkpoint.pt",
        resume=c["resume"],
        on_epoch=_print_epoch,
    )
    onnx_path = export_adapter(result.model, out / "adapter.onnx")
    adapter_scores = result.history[-1].metrics
    report = {
        "base": base,
        "data": data_desc,
        "seed": c["seed"],
        # Best-accuracy cosine distance on the held-out identities; `learn install` ships it.
        "threshold": adapter_scores.get("threshold"),
        "split": split.sizes(),
        "recipe": c["recipe"],
        "frozen": evaluate(split.test.features, split.test.labels).to_dict(),
        "adapter": adapter_scores,
        "history": result.to_dict(),
        "adapter_path": str(onnx_path),
    }
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


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

    split = identity_split(_data(collection, lfw_cache), test_fraction, seed)
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

    test = identity_split(_data(collection, lfw_cache), 0.5, seed).test
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
