"""``faceid learn train`` as one call: an embedding adapter on stored embeddings (an LFW
embedding cache or a collection) or a :class:`.models.FaceCNN` on aligned crops, trained with
online mining and scored one-shot on held-out identities (:func:`train_embedding`); and the
training vectors ``learn eval`` and ``learn plot`` read (:func:`training_set`)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from ...config import get_settings
from ...service import FaceService
from .adapter import export_adapter
from .cnn import CnnConfig, train_cnn
from .data import EmbeddingSet, from_collection, identity_split, load_lfw_cache, newest_lfw_cache
from .device import resolve_device
from .evaluate import evaluate
from .mining import make_loss, make_miner
from .models import EmbeddingAdapter
from .train import EpochLog, balanced_sampler, fit

ARCHS = ("adapter", "cnn")


@dataclass(frozen=True)
class TrainOptions:
    """A training run: the command's options."""

    out: Path  # run folder: checkpoint.pt, the .onnx, report.json
    arch: str = "adapter"  # adapter (on stored embeddings) or cnn (on aligned face crops)
    collection: str | None = None  # adapter: a collection (None: the LFW embedding cache)
    lfw_cache: Path | None = None  # adapter: the LFW embedding cache (None: the newest)
    images: Path | None = None  # cnn: DIR/<person>/*.jpg (None: the shared LFW images)
    recipe: str = "triplet-semi-hard"  # loss-miner
    margin: float = 0.1
    epochs: int = 5
    classes: int = 16  # identities per batch
    samples: int = 8  # images per identity per batch
    lr: float = 3e-4
    hidden: int = 256  # adapter: hidden width
    width: int = 32  # cnn: channels of the first block
    dim: int = 128  # cnn: embedding dimension
    max_identities: int | None = None  # cnn
    max_images_per_identity: int | None = None  # cnn
    augment: bool = True  # cnn: random flip and crop jitter
    baseline: bool = True  # cnn: also score the pipeline's embedder
    test_fraction: float = 0.5  # identities held out for the one-shot scores
    seed: int = 0
    device: str = "cpu"
    resume: bool = False  # continue from out/checkpoint.pt


@dataclass(frozen=True)
class TrainingRun:
    """What a run wrote: its report (report.json), the one-shot scores of the frozen backbone
    and of the trained model by name (a score is None when not measured), and the ONNX file."""

    arch: str
    report: dict[str, object]
    scores: dict[str, dict | None]
    path: str


def train_embedding(
    options: TrainOptions, on_epoch: Callable[[EpochLog], None] | None = None
) -> TrainingRun:
    """Train ``options.arch``; raises DeviceUnavailableError before any work when the device
    cannot run it."""
    resolve_device(options.device)
    if options.arch == "cnn":
        images = options.images or get_settings().lfw_dir / "images"
        report = train_cnn(_cnn_config(options, images), on_epoch=on_epoch)
        scores = {"frozen": report["frozen"], f"cnn {options.recipe}": report["cnn"]}
        return TrainingRun("cnn", report, scores, str(report["model_path"]))
    report = train_adapter(options, on_epoch)
    scores = {"frozen": report["frozen"], options.recipe: report["adapter"]}
    return TrainingRun("adapter", report, scores, str(report["adapter_path"]))


def _cnn_config(o: TrainOptions, images: Path) -> CnnConfig:
    return CnnConfig(
        images=images,
        out=o.out,
        recipe=o.recipe,
        margin=o.margin,
        epochs=o.epochs,
        classes=o.classes,
        samples=o.samples,
        lr=o.lr,
        test_fraction=o.test_fraction,
        seed=o.seed,
        device=o.device,
        resume=o.resume,
        width=o.width,
        dim=o.dim,
        augment=o.augment,
        baseline=o.baseline,
        max_identities=o.max_identities,
        max_images_per_identity=o.max_images_per_identity,
    )


def train_adapter(
    o: TrainOptions, on_epoch: Callable[[EpochLog], None] | None = None
) -> dict[str, object]:
    """An adapter on the stored embeddings; returns (and writes) report.json."""
    torch.manual_seed(o.seed)
    base, data_desc = training_source(o.collection, o.lfw_cache)
    split = identity_split(training_set(o.collection, o.lfw_cache), o.test_fraction, o.seed)
    model = EmbeddingAdapter(split.train.features.shape[1], o.hidden)
    result = fit(
        model,
        make_loss(o.recipe, o.margin),
        make_miner(o.recipe, o.margin),
        balanced_sampler(split.train.labels, o.classes, o.samples),
        split.train,
        epochs=o.epochs,
        batch_size=o.classes * o.samples,
        lr=o.lr,
        device=o.device,
        eval_set=split.test,
        checkpoint=o.out / "checkpoint.pt",
        resume=o.resume,
        on_epoch=on_epoch,
    )
    onnx_path = export_adapter(result.model, o.out / "adapter.onnx")
    adapter_scores = result.history[-1].metrics
    report = {
        "base": base,
        "data": data_desc,
        "seed": o.seed,
        # Best-accuracy cosine distance on the held-out identities; `learn install` ships it.
        "threshold": adapter_scores.get("threshold"),
        "split": split.sizes(),
        "recipe": o.recipe,
        "frozen": evaluate(split.test.features, split.test.labels).to_dict(),
        "adapter": adapter_scores,
        "history": result.to_dict(),
        "adapter_path": str(onnx_path),
    }
    (o.out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def training_set(collection: str | None, lfw_cache: Path | None) -> EmbeddingSet:
    """The training vectors: a collection's stored embeddings, else an LFW embedding cache
    (None: the newest)."""
    if not collection:
        return load_lfw_cache(lfw_cache)
    with FaceService.embedded() as service:
        coll = service.repo.get_collection(collection)
        return from_collection(service.repo, coll.id)


def training_source(collection: str | None, lfw_cache: Path | None) -> tuple[str, str]:
    """The embedder the training vectors came from, and a description of them."""
    if not collection:
        # The LFW cache holds embeddings of the default model (bench/identification_lfw.py).
        return (
            get_settings().models.embedder,
            f"LFW embedding cache {lfw_cache or newest_lfw_cache()}",
        )
    with FaceService.embedded() as service:
        coll = service.repo.get_collection(collection)
        return coll.model, f"collection {collection} ({coll.model_tag})"
