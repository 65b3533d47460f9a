"""One-shot evaluation of embeddings: retrieval (PML AccuracyCalculator) and verification."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from ...calibration.metrics import accuracy_at, best_threshold, roc_auc, tar_at_far
from .crops import to_unit


@dataclass
class Scores:
    map_at_r: float
    precision_at_1: float
    r_precision: float
    verification_accuracy: float
    threshold: float
    tar_at_far: float
    far: float
    roc_auc: float
    n_genuine: int
    n_impostor: int

    def to_dict(self) -> dict:
        return asdict(self)


def retrieval(embeddings: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Leave-one-out retrieval among the given embeddings (every query against all others)."""
    from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator

    calc = AccuracyCalculator(
        include=("precision_at_1", "r_precision", "mean_average_precision_at_r"),
        k="max_bin_count",
        device=torch.device("cpu"),
    )
    x = torch.from_numpy(np.ascontiguousarray(embeddings, dtype=np.float32))
    y = torch.from_numpy(np.asarray(labels))
    return {k: float(v) for k, v in calc.get_accuracy(x, y, x, y, ref_includes_query=True).items()}


def verification_pairs(
    labels: np.ndarray, n_impostor: int = 200_000, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(i, j, same): every genuine pair and ``n_impostor`` random impostor pairs."""
    labels = np.asarray(labels)
    gi, gj = [], []
    for lab in np.unique(labels):
        idx = np.flatnonzero(labels == lab)
        a, b = np.triu_indices(len(idx), k=1)
        gi.append(idx[a])
        gj.append(idx[b])
    rng = np.random.default_rng(seed)
    ii = rng.integers(0, len(labels), size=n_impostor * 2)
    jj = rng.integers(0, len(labels), size=n_impostor * 2)
    diff = labels[ii] != labels[jj]
    ii, jj = ii[diff][:n_impostor], jj[diff][:n_impostor]
    i = np.concatenate([*gi, ii])
    j = np.concatenate([*gj, jj])
    same = np.concatenate([np.ones(sum(map(len, gi)), bool), np.zeros(len(ii), bool)])
    return i, j, same


def evaluate(
    embeddings: np.ndarray,
    labels: np.ndarray,
    far: float = 1e-3,
    n_impostor: int = 200_000,
    seed: int = 0,
) -> Scores:
    """Embeddings are L2-normalised here; verification uses cosine distance ``1 - cos``."""
    x = np.asarray(embeddings, dtype=np.float32)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    ret = retrieval(x, labels)
    i, j, same = verification_pairs(labels, n_impostor, seed)
    dist = 1.0 - np.einsum("nd,nd->n", x[i], x[j])
    thr = best_threshold(dist, same)
    op = tar_at_far(dist, same, far)
    return Scores(
        map_at_r=ret["mean_average_precision_at_r"],
        precision_at_1=ret["precision_at_1"],
        r_precision=ret["r_precision"],
        verification_accuracy=accuracy_at(dist, same, thr),
        threshold=thr,
        tar_at_far=op.tar,
        far=far,
        roc_auc=roc_auc(dist, same),
        n_genuine=int(same.sum()),
        n_impostor=int((~same).sum()),
    )


@torch.no_grad()
def embed(model: torch.nn.Module, features: np.ndarray, device: str = "cpu", batch: int = 4096):
    """Model outputs for numpy inputs, as a float32 numpy array. uint8 inputs are image crops:
    scaled to [0, 1] on the device. Batches hold at most ~16M values (crops: a few hundred)."""
    model.eval()
    row = int(np.prod(features.shape[1:])) or 1
    batch = max(1, min(batch, 2**24 // row))
    outs = [
        model(to_unit(torch.from_numpy(features[k : k + batch]).to(device)).float()).cpu()
        for k in range(0, len(features), batch)
    ]
    return torch.cat(outs).numpy()
