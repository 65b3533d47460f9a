"""Face hits to ranked identities: what ``find`` returns for one probe."""

from __future__ import annotations

from collections import defaultdict
from typing import Literal

import numpy as np

from ..store import FaceOwner
from .results import Match

Aggregate = Literal["max", "mean"]


def rank_identities(
    sims: np.ndarray,
    ids: np.ndarray,
    faces: dict[int, FaceOwner],
    k: int,
    aggregate: Aggregate,
    top_m: int,
    threshold: float,
) -> list[Match]:
    """Face hits of one probe grouped by identity (deleted faces left out), scored by their
    best face (``max``) or the mean of the top ``top_m`` (``mean``), best ``k`` first."""
    per_identity: dict[int, list[tuple[float, int]]] = defaultdict(list)
    for sim, face_id in zip(sims.tolist(), ids.tolist(), strict=True):
        face = faces.get(face_id)
        if face_id < 0 or face is None:  # deleted since the index saw it
            continue
        per_identity[face.identity_id].append((sim, face_id))
    scored = []
    for identity_id, hits in per_identity.items():
        hits.sort(reverse=True)
        mean = float(np.mean([s for s, _ in hits[:top_m]]))
        score = mean if aggregate == "mean" else hits[0][0]
        scored.append((score, identity_id, hits[0][1]))
    scored.sort(reverse=True)
    matches = []
    for rank, (score, identity_id, face_id) in enumerate(scored[:k]):
        face = faces[face_id]
        distance = 1.0 - score
        matches.append(
            Match(
                rank=rank,
                external_id=face.external_id,
                name=face.name,
                identity_id=identity_id,
                face_id=face_id,
                similarity=score,
                distance=distance,
                accepted=distance <= threshold,
                threshold=threshold,
            )
        )
    return matches
