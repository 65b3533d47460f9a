"""Aligned face crops for end-to-end CNN training: extraction from ``root/<person>/*.jpg``
through the pipeline (once, cached), and augmentation done on tensors on the training device."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from ...errors import DatasetError
from ...files import save_npz_atomically
from ...pipeline import FacePipeline
from .data import EmbeddingSet

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}

# The model whose aligned crop (dlib's 150x150 chip) the end-to-end CNN trains on by default,
# and whose embeddings are its baseline.
CROP_EMBEDDER = "dlib-resnet-v1-tta8"


@dataclass
class CropSet(EmbeddingSet):
    """``features`` are uint8 RGB crops (n, 3, H, W), aligned by the pipeline's embedder (dlib's
    embedder, the default here, gives its 150x150 face chip). ``fit``, ``identity_split`` and
    ``evaluate.embed`` take it like an :class:`EmbeddingSet`; pixels become [0, 1] floats on the
    device (:func:`to_unit`), so batches cross to a GPU as bytes."""

    skipped: int = 0  # images in which the pipeline found no face

    @property
    def crop_shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.features.shape[1:])  # type: ignore[return-value]


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """uint8 pixels → float in [0, 1]; float inputs pass through."""
    return x.float().div_(255.0) if x.dtype == torch.uint8 else x


@dataclass
class FlipJitter:
    """Per sample: a horizontal flip with probability 1/2 and a small random shift and zoom,
    as one ``grid_sample`` on whatever device the batch is on. Aligned chips are left-right
    symmetric templates, so a mirrored face is still a well-aligned face."""

    shift: float = 0.04  # largest translation, as a share of the crop side
    zoom: float = 0.05  # largest relative scale change
    flip: bool = True

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = to_unit(x)
        n = x.shape[0]
        r = torch.rand(n, 4, device=x.device)
        sign = torch.where(r[:, 0] < 0.5, -1.0, 1.0) if self.flip else torch.ones_like(r[:, 0])
        scale = 1.0 + self.zoom * (2.0 * r[:, 1] - 1.0)
        theta = torch.zeros(n, 2, 3, device=x.device)
        theta[:, 0, 0] = sign * scale
        theta[:, 1, 1] = scale
        # affine_grid coordinates span [-1, 1], i.e. 2 units per crop side.
        theta[:, :, 2] = 2.0 * self.shift * (2.0 * r[:, 2:] - 1.0)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, padding_mode="border", align_corners=False)


def people_folders(root: Path, min_images: int, max_identities: int | None) -> list[Path]:
    """Person folders with at least ``min_images`` image files, by name, the first N."""
    if not Path(root).is_dir():
        raise DatasetError(f"{root} is not a folder (expected {root}/<person>/*.jpg)")
    folders = [
        d for d in sorted(Path(root).iterdir()) if d.is_dir() and len(image_files(d)) >= min_images
    ]
    return folders[:max_identities]


def image_files(folder: Path) -> list[Path]:
    return sorted(f for f in folder.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)


def extract_crops(
    root: Path,
    pipeline=None,
    *,
    max_identities: int | None = None,
    max_per_identity: int | None = None,
    min_images: int = 1,
) -> tuple[CropSet, list[Path]]:
    """The centre-most face of each image, aligned by ``pipeline`` (default:
    :data:`CROP_EMBEDDER`'s), and the images without a face."""
    pipeline = pipeline or FacePipeline(embedder=CROP_EMBEDDER)
    crops: list[np.ndarray] = []
    people: list[str] = []
    skipped: list[Path] = []
    for folder in people_folders(root, min_images, max_identities):
        for f in image_files(folder)[:max_per_identity]:
            faces = pipeline.extract_faces(f, max_faces=1)
            if faces:
                crops.append(faces[0].crop)
                people.append(folder.name)
            else:
                skipped.append(f)
    if not crops:
        raise DatasetError(f"no face found in any image under {root}")
    pixels = np.ascontiguousarray(np.stack(crops).transpose(0, 3, 1, 2))
    names, labels = np.unique(np.asarray(people), return_inverse=True)
    data = CropSet(pixels, labels.astype(np.int64), [str(n) for n in names], len(skipped))
    return data, skipped


def load_crops(
    root: Path,
    pipeline=None,
    *,
    cache: Path | None = None,
    max_identities: int | None = None,
    max_per_identity: int | None = None,
    min_images: int = 2,
) -> CropSet:
    """:func:`extract_crops`, kept in ``cache`` (an .npz) so a resumed run reuses the crops;
    the cache is rebuilt when the folder, the limits or the aligning model differ."""
    pipeline = pipeline or FacePipeline(embedder=CROP_EMBEDDER)
    key = json.dumps(
        [str(Path(root).resolve()), max_identities, max_per_identity, min_images, pipeline.model]
    )
    if cache is not None and cache.is_file():
        with np.load(cache, allow_pickle=False) as saved:
            if str(saved["key"]) == key:
                names = [str(n) for n in saved["names"]]
                return CropSet(saved["crops"], saved["labels"], names, int(saved["skipped"]))
    data, _ = extract_crops(
        root,
        pipeline,
        max_identities=max_identities,
        max_per_identity=max_per_identity,
        min_images=min_images,
    )
    if cache is not None:
        save_npz_atomically(
            cache,
            key=key,
            crops=data.features,
            labels=data.labels,
            names=np.asarray(data.names),
            skipped=data.skipped,
        )
    return data


class FaceFolderDataset(Dataset):
    """``root/<identity>/*.jpg`` as a map-style dataset of float CHW crops in [0, 1] (see
    :func:`extract_crops`; images without a face are in ``skipped``). Training a CNN
    goes through :func:`load_crops` instead, which keeps the pixels as bytes."""

    def __init__(self, root: Path, pipeline=None, max_per_identity: int | None = None) -> None:
        data, self.skipped = extract_crops(root, pipeline, max_per_identity=max_per_identity)
        self.names = data.names
        self.labels = torch.from_numpy(data.labels)
        self.crops = torch.from_numpy(data.features)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.crops[i].float() / 255.0, self.labels[i]
