"""Embedding networks: the residual MLP adapter, a small face CNN, Siamese/triplet wrappers and
the softmax-classification head."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class EmbeddingAdapter(nn.Module):
    """``x + MLP(x)``, L2-normalised; the MLP's last layer starts at zero so the untrained
    adapter is exactly the frozen backbone (training can only move away from a known baseline).
    ``out_dim != in_dim`` (e.g. 2 for plots) uses a linear projection as the skip path."""

    def __init__(
        self, in_dim: int = 128, hidden: int = 256, out_dim: int | None = None, normalize=True
    ) -> None:
        super().__init__()
        out_dim = out_dim or in_dim
        self.in_dim, self.out_dim, self.normalize = in_dim, out_dim, normalize
        self.mlp = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, out_dim))
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)
        self.skip: nn.Module = nn.Identity() if out_dim == in_dim else nn.Linear(in_dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.skip(x) + self.mlp(x)
        return F.normalize(y, dim=-1) if self.normalize else y

    def config(self) -> dict:
        return {
            "in_dim": self.in_dim,
            "hidden": self.mlp[0].out_features,
            "out_dim": self.out_dim,
            "normalize": self.normalize,
        }


class FaceCNN(nn.Module):
    """A small CNN for aligned RGB face crops (N, 3, H, W) in [0, 1] → L2-normalised embeddings;
    for end-to-end fine-tuning when a GPU is available."""

    def __init__(self, dim: int = 128, width: int = 32) -> None:
        super().__init__()

        def block(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(cin, cout, 3, padding=1, bias=False),
                nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            )

        self.features = nn.Sequential(
            block(3, width), block(width, width * 2), block(width * 2, width * 4),
            block(width * 4, width * 8), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )  # fmt: skip
        self.head = nn.Linear(width * 8, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.head(self.features(x - 0.5)), dim=-1)


class SiameseNet(nn.Module):
    """Shared-weight embedding of two inputs (the seed's Siamese wrapper)."""

    def __init__(self, embedding: nn.Module) -> None:
        super().__init__()
        self.embedding = embedding

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.embedding(x1), self.embedding(x2)


class TripletNet(nn.Module):
    """Shared-weight embedding of anchor, positive and negative inputs."""

    def __init__(self, embedding: nn.Module) -> None:
        super().__init__()
        self.embedding = embedding

    def forward(self, a: torch.Tensor, p: torch.Tensor, n: torch.Tensor):
        return self.embedding(a), self.embedding(p), self.embedding(n)


class SoftmaxLoss(nn.Module):
    """Cross-entropy through a linear classifier on the embeddings (the classification
    baseline). Same call signature as a PML loss, so ``fit`` trains it unchanged; the
    embeddings used at test time are the classifier's input (the penultimate layer)."""

    def __init__(self, dim: int, n_classes: int) -> None:
        super().__init__()
        self.classifier = nn.Linear(dim, n_classes)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor, indices_tuple=None):
        return F.cross_entropy(self.classifier(embeddings), labels)
