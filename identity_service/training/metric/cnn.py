"""End-to-end training of :class:`.models.FaceCNN` on aligned face crops: the same losses,
miners, balanced sampler, identity-disjoint split, ``fit`` loop, metrics and report as the
adapter path, with crops instead of embedding vectors. Meant for a GPU; CPU for smoke runs."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ...errors import DatasetError
from ...pipeline import FacePipeline
from .adapter import export_onnx
from .crops import CROP_EMBEDDER, CropSet, FlipJitter, load_crops
from .data import Split, identity_split
from .device import resolve_device
from .evaluate import evaluate
from .mining import make_loss, make_miner
from .models import FaceCNN
from .train import EpochLog, balanced_sampler, fit


@dataclass
class CnnConfig:
    images: Path  # root/<person>/*.jpg
    out: Path  # run folder: crops.npz, checkpoint.pt, cnn.onnx, report.json
    recipe: str = "triplet-semi-hard"
    margin: float = 0.1
    epochs: int = 5
    classes: int = 16  # identities per batch
    samples: int = 4  # images per identity per batch
    lr: float = 3e-4
    dim: int = 128
    width: int = 32
    test_fraction: float = 0.5
    seed: int = 0
    device: str = "cpu"
    resume: bool = False
    max_identities: int | None = None
    max_images_per_identity: int | None = None
    min_images: int = 2
    augment: bool = True
    baseline: bool = True  # also score the pipeline's own embedder on the held-out crops


def export_cnn(model: FaceCNN, path: Path, crop_shape: tuple[int, int, int]) -> Path:
    """ONNX graph ``crops (n, 3, H, W) float32 RGB in [0, 1] -> embeddings (n, dim)``."""
    return export_onnx(model, path, (2, *crop_shape), "crops", "embeddings")


def baseline_scores(pipeline, test: CropSet) -> dict:
    """The pipeline's embedder on the same held-out crops, for comparison."""
    chips = list(test.features.transpose(0, 2, 3, 1))
    return evaluate(pipeline.embedder.embed_crops(chips), test.labels).to_dict()


def train_cnn(
    config: CnnConfig,
    pipeline=None,
    *,
    progress: bool = True,
    on_epoch: Callable[[EpochLog], None] | None = None,
) -> dict:
    """Train, evaluate on held-out identities and export; returns (and writes) report.json."""
    device = resolve_device(config.device)  # fail before minutes of crop extraction
    torch.manual_seed(config.seed)
    np.random.seed(config.seed)  # MPerClassSampler draws from numpy's global RNG
    pipeline = pipeline or FacePipeline(embedder=CROP_EMBEDDER)
    data, split = _crops(config, pipeline)
    model = FaceCNN(config.dim, config.width)
    result = fit(
        model,
        make_loss(config.recipe, config.margin),
        make_miner(config.recipe, config.margin),
        balanced_sampler(split.train.labels, config.classes, config.samples),
        split.train,
        epochs=config.epochs,
        batch_size=config.classes * config.samples,
        lr=config.lr,
        device=device,
        eval_set=split.test,
        checkpoint=config.out / "checkpoint.pt",
        resume=config.resume,
        progress=progress,
        on_epoch=on_epoch,
        transform=FlipJitter() if config.augment else None,
    )
    onnx_path = export_cnn(result.model, config.out / "cnn.onnx", data.crop_shape)
    scores = result.history[-1].metrics
    report: dict[str, object] = {
        "arch": "cnn",
        "data": f"face images {config.images}",
        "crops": {
            "aligned_by": pipeline.model,
            "shape": list(data.crop_shape),
            "no_face": data.skipped,
        },
        "seed": config.seed,
        "threshold": scores.get("threshold"),
        "split": split.sizes(),
        "recipe": config.recipe,
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(config).items()},
        "frozen": baseline_scores(pipeline, split.test) if config.baseline else None,
        "cnn": scores,
        "history": result.to_dict(),
        "model_path": str(onnx_path),
    }
    (config.out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def _crops(config: CnnConfig, pipeline) -> tuple[CropSet, Split]:
    """The aligned crops of ``config.images`` (cached in the run folder) and their
    identity-disjoint split, refused when either side is too small to train or score."""
    data = load_crops(
        config.images,
        pipeline,
        cache=config.out / "crops.npz",
        max_identities=config.max_identities,
        max_per_identity=config.max_images_per_identity,
        min_images=config.min_images,
    )
    split = identity_split(data, config.test_fraction, config.seed)
    if split.train.n_classes < config.classes or split.test.n_classes < 2:
        raise DatasetError(
            f"{split.sizes()}: training needs at least {config.classes} identities (--classes) "
            "and the held-out side at least 2, each with 2+ images with a face"
        )
    return data, split
