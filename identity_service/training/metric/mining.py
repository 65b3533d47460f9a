"""Losses and online miners by name, all from pytorch-metric-learning except random-hard
(one random margin-violating negative per anchor-positive pair), a vectorised PML miner here."""

from __future__ import annotations

import torch
from pytorch_metric_learning import losses, miners
from pytorch_metric_learning.distances import LpDistance
from pytorch_metric_learning.utils import loss_and_miner_utils as lmu


class RandomHardTripletMiner(miners.BaseMiner):
    """For every anchor-positive pair, one negative drawn uniformly among those with a positive
    triplet loss ``d(a,p) - d(a,n) + margin > 0``; pairs with none are dropped. Vectorised over
    all (a, p, n) at once: O(B^3) memory, fine for batches of a few hundred."""

    def __init__(self, margin: float = 0.2, **kwargs) -> None:
        super().__init__(**kwargs)
        self.margin = margin

    def mine(self, embeddings, labels, ref_emb, ref_labels):
        dist = self.distance(embeddings, ref_emb)
        a, p = lmu.get_all_pairs_indices(labels, ref_labels)[:2]
        if len(a) == 0:
            empty = a.new_empty(0)
            return empty, empty, empty
        neg_mask = labels[:, None] != ref_labels[None, :]
        # Larger similarity means closer when the distance is a similarity (e.g. cosine).
        sign = -1.0 if self.distance.is_inverted else 1.0
        violation = sign * (dist[a, p][:, None] - dist[a]) + self.margin  # (pairs, B)
        valid = (violation > 0) & neg_mask[a]
        scores = torch.rand(valid.shape, device=dist.device).masked_fill(~valid, -1.0)
        best = scores.argmax(dim=1)
        keep = valid.any(dim=1)
        return a[keep], p[keep], best[keep]


RECIPES = (
    "contrastive-all",
    "contrastive-hard",
    "triplet-all",
    "triplet-hardest",
    "triplet-random-hard",
    "triplet-semi-hard",
)


def make_loss(recipe: str, margin: float = 0.2) -> torch.nn.Module:
    """Losses on Euclidean distance between L2-normalised embeddings (PML's default)."""
    distance = LpDistance(normalize_embeddings=True)
    if recipe.startswith("contrastive"):
        # Impostors of the dlib backbone start near 0.4 (Euclidean, unit vectors).
        return losses.ContrastiveLoss(pos_margin=0.0, neg_margin=0.4 + margin, distance=distance)
    if recipe.startswith("triplet"):
        return losses.TripletMarginLoss(margin=margin, distance=distance)
    raise ValueError(f"unknown recipe {recipe!r}; one of {', '.join(RECIPES)}")


def make_miner(recipe: str, margin: float = 0.2) -> miners.BaseMiner | None:
    """``None`` means the loss uses every pair/triplet of the batch."""
    distance = LpDistance(normalize_embeddings=True)
    match recipe:
        case "contrastive-all":
            return None
        case "contrastive-hard":
            # All positive pairs; for each anchor its hardest negative.
            return miners.BatchEasyHardMiner(
                pos_strategy=miners.BatchEasyHardMiner.ALL,
                neg_strategy=miners.BatchEasyHardMiner.HARD,
                distance=distance,
            )
        case "triplet-all":
            return miners.TripletMarginMiner(margin, type_of_triplets="all", distance=distance)
        case "triplet-hardest":
            return miners.BatchHardMiner(distance=distance)
        case "triplet-random-hard":
            return RandomHardTripletMiner(margin, distance=distance)
        case "triplet-semi-hard":
            return miners.TripletMarginMiner(margin, type_of_triplets="semihard", distance=distance)
    raise ValueError(f"unknown recipe {recipe!r}; one of {', '.join(RECIPES)}")
