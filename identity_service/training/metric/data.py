"""Datasets: embeddings (LFW cache, a stored collection), folders of face images; splits."""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset


@dataclass
class EmbeddingSet:
    """Feature vectors with integer labels (0..n_classes-1) and the identity names."""

    features: np.ndarray  # (n, dim) float32
    labels: np.ndarray  # (n,) int64
    names: list[str]  # names[label]

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def n_classes(self) -> int:
        return len(self.names)

    def subset(self, mask: np.ndarray) -> EmbeddingSet:
        """Rows where ``mask``; labels renumbered to stay contiguous."""
        labels = self.labels[mask]
        kept, new = np.unique(labels, return_inverse=True)
        return replace(
            self,
            features=self.features[mask],
            labels=new.astype(np.int64),
            names=[self.names[k] for k in kept],
        )

    def torch(self) -> TensorPairs:
        return TensorPairs(torch.from_numpy(self.features), torch.from_numpy(self.labels))


class TensorPairs(Dataset):
    """(feature, label) pairs; ``labels`` is exposed for samplers. uint8 features (image
    crops) stay uint8 until they reach the device."""

    def __init__(self, features: torch.Tensor, labels: torch.Tensor) -> None:
        self.features = features if features.dtype == torch.uint8 else features.float()
        self.labels = labels.long()

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.features[i], self.labels[i]


def from_names(features: np.ndarray, identity_names: list[str]) -> EmbeddingSet:
    names, labels = np.unique(np.asarray(identity_names), return_inverse=True)
    return EmbeddingSet(
        np.asarray(features, dtype=np.float32), labels.astype(np.int64), [str(n) for n in names]
    )


def newest_lfw_cache(cache_dir: Path | None = None) -> Path:
    """The newest ``lfw-all-*.npz`` written by bench/identification_lfw.py."""
    cache_dir = cache_dir or Path(os.path.expanduser("~/.faceid/cache"))
    found = sorted(glob.glob(str(cache_dir / "lfw-all-*.npz")), key=os.path.getmtime)
    if not found:
        raise FileNotFoundError(
            f"no lfw-all-*.npz in {cache_dir}: run bench/identification_lfw.py first"
        )
    return Path(found[-1])


def load_lfw_cache(path: Path | None = None) -> EmbeddingSet:
    """LFW embeddings of the default model, labelled by the person folder of each path."""
    data = np.load(path or newest_lfw_cache(), allow_pickle=False)
    people = [str(p).split("/", 1)[0] for p in data["paths"]]
    return from_names(data["embeddings"], people)


def from_collection(repo, collection_id: int) -> EmbeddingSet:
    """Every live face of a collection, labelled by its identity's external id."""
    ids, vectors, _ = repo.all_embeddings(collection_id)
    faces = repo.faces_by_ids(ids.tolist())
    keep = np.array([int(i) in faces for i in ids], dtype=bool)
    names = [faces[int(i)].external_id for i in ids[keep]]
    return from_names(vectors[keep], names)


@dataclass
class Split:
    train: EmbeddingSet
    test: EmbeddingSet
    seed: int

    def sizes(self) -> dict[str, int]:
        return {
            "train_identities": self.train.n_classes,
            "train_images": len(self.train),
            "test_identities": self.test.n_classes,
            "test_images": len(self.test),
            "seed": self.seed,
        }


def identity_split(
    data: EmbeddingSet, test_fraction: float = 0.5, seed: int = 0, min_images: int = 2
) -> Split:
    """Identity-disjoint train/test over the people with at least ``min_images`` images."""
    counts = np.bincount(data.labels, minlength=data.n_classes)
    eligible = np.flatnonzero(counts >= min_images)
    rng = np.random.default_rng(seed)
    shuffled = rng.permutation(eligible)
    n_test = round(len(shuffled) * test_fraction)
    test_ids = set(shuffled[:n_test].tolist())
    train_ids = set(shuffled[n_test:].tolist())
    in_test = np.array([lab in test_ids for lab in data.labels])
    in_train = np.array([lab in train_ids for lab in data.labels])
    return Split(data.subset(in_train), data.subset(in_test), seed)
