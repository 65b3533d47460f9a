"""Open-set (1:N) calibration: the threshold at which ``find`` accepts a target share of
strangers, the false-positive identification rate (FPIR).

A stranger is accepted when their best score against the whole gallery clears the threshold, so
the threshold depends on the gallery's size and content, not only on the model. It is measured
on the gallery itself, leaving one identity out: a sample of enrolled faces is searched against
the gallery without their own identity, and each search's best (non-mated) similarity is what a
stranger's would be. Faces of known strangers (people certainly not enrolled) add searches
against the whole gallery. The threshold at FPIR f is the smallest similarity that at most a
share f of those best scores reach.

**The model's prior.** A registry model carries its 1:1 impostor similarity distribution,
measured on the shared LFW images (``impostor_tail``). Scaled to a gallery of N identities under
independence, FPIR(N) = 1 - (1 - FAR)^N, so the per-comparison FAR is 1 - (1 - f)^(1/N). Where
both place a threshold, the stricter one is used: each rests on an assumption the other does not
need (the gallery's faces look like the strangers to come; comparisons are independent and the
population is LFW-like), and a user who sets a target FPIR wants it as a ceiling.

**Small galleries.** Fewer than ``MIN_EXCEEDANCES / f`` searches cannot place the threshold
(fewer than 10 strangers would be accepted in the sample); then the prior alone answers. A
model without a prior (a file given by path, an installed adapter) uses its 1:1 threshold there,
and the operating point says so and why: no rule falls back silently. Known strangers
(``faceid calibrate --strangers``) add searches.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..errors import InvalidParameterError
from ..types import OperatingPoint

DEFAULT_FPIR = 0.01
MIN_EXCEEDANCES = 10
LEAVE_ONE_OUT = "leave-one-identity-out"
MODEL_PRIOR = "model prior"

Search = Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray]]


def check_fpir(fpir: float) -> float:
    if not 0.0 < fpir < 1.0:
        raise InvalidParameterError(
            f"target FPIR must be in (0, 1), got {fpir}", parameter="fpir", fpir=fpir
        )
    return float(fpir)


def similarity_at_fpir(scores: np.ndarray, fpir: float) -> float:
    """The smallest similarity that at most ``fpir`` of ``scores`` reach (the decision accepts
    a similarity at or above it)."""
    ordered = np.sort(np.asarray(scores, dtype=np.float64))[::-1]
    if ordered.size == 0:
        raise ValueError("no scores")
    allowed = math.floor(check_fpir(fpir) * ordered.size)
    if allowed >= ordered.size:
        return float(np.nextafter(ordered[-1], -np.inf))
    return float(np.nextafter(ordered[allowed], np.inf))


def prior_similarity(tail: tuple[tuple[float, float], ...], identities: int, fpir: float) -> float:
    """The similarity at which a gallery of ``identities`` accepts ``fpir`` of strangers, from
    a model's impostor tail ((FAR, similarity) pairs), assuming independent comparisons.
    Beyond the tail's smallest FAR the tail's last similarity is used."""
    far = -math.expm1(math.log1p(-check_fpir(fpir)) / max(identities, 1))
    fars = np.log10([f for f, _ in tail])[::-1]  # ascending
    sims = np.array([s for _, s in tail])[::-1]
    return float(np.interp(math.log10(far), fars, sims))


def leave_one_out_scores(
    vectors: np.ndarray,
    owners: np.ndarray,
    own_faces: np.ndarray,
    search: Search,
    owner_of: Callable[[np.ndarray], np.ndarray],
    gallery_size: int,
) -> np.ndarray:
    """Each sampled face's best similarity to another identity: ``vectors`` (n, dim) with
    their ``owners`` and how many faces each owner has (``own_faces``); ``owner_of`` maps face
    ids from ``search`` to identity ids (-1 for faces gone since)."""
    scores = np.full(len(vectors), np.nan)
    # Enough neighbours to get past the probe's own faces; grouped so one identity with many
    # photos does not make every search deep.
    need = np.minimum(2 ** np.ceil(np.log2(own_faces + 1)).astype(int), gallery_size)
    for k in np.unique(need):
        rows = np.flatnonzero(need == k)
        sims, ids = search(vectors[rows], int(k))
        hit_owner = owner_of(ids)
        other = (hit_owner != owners[rows, None]) & (hit_owner >= 0) & (ids >= 0)
        first = np.argmax(other, axis=1)
        found = other[np.arange(len(rows)), first]
        scores[rows[found]] = sims[np.arange(len(rows)), first][found]
    return scores[np.isfinite(scores)]


@dataclass
class OpenSetEstimate:
    """What an open-set calibration measured on a gallery; any FPIR's threshold derives from
    it. ``scores``: best non-mated similarities, descending; ``prior``: the model's impostor
    tail, for FPIRs the scores are too few to place."""

    model: str
    gallery_faces: int
    gallery_identities: int
    scores: np.ndarray
    prior: tuple[tuple[float, float], ...] = ()
    strangers: int = 0
    created: str = ""
    details: dict[str, object] = field(default_factory=dict)

    @property
    def n_searches(self) -> int:
        return int(self.scores.size)

    @property
    def source(self) -> str:
        if self.n_searches == 0:
            return MODEL_PRIOR
        return LEAVE_ONE_OUT + (f" + {self.strangers} strangers" if self.strangers else "")

    def stable_for(self, fpir: float) -> bool:
        return self.n_searches * fpir >= MIN_EXCEEDANCES

    def operating_point(self, fpir: float) -> OperatingPoint | None:
        """The threshold at ``fpir``, or None when neither the searches nor a prior can place
        it (too few searches, for a model without a prior)."""
        fpir = check_fpir(fpir)
        when = f", {self.created[:10]}" if self.created else ""
        size = f"{self.gallery_identities:,} identities"
        if self.stable_for(fpir):
            similarity = similarity_at_fpir(self.scores, fpir)
            source = f"{self.source}: {self.n_searches:,} searches at {size}{when}"
            if self.prior:
                prior = prior_similarity(self.prior, self.gallery_identities, fpir)
                if prior > similarity:
                    similarity = prior
                    source = (
                        f"{MODEL_PRIOR} (LFW impostors) scaled to {size}, stricter than {source}"
                    )
        elif self.prior:
            similarity = prior_similarity(self.prior, self.gallery_identities, fpir)
            source = (
                f"{MODEL_PRIOR} (LFW impostors) scaled to {size}: {self.n_searches:,} searches "
                f"are too few for FPIR {fpir:g} (at least {math.ceil(MIN_EXCEEDANCES / fpir):,})"
            )
        else:
            return None
        return OperatingPoint(1.0 - similarity, fpir, self.gallery_identities, source)

    def to_report(self) -> dict[str, object]:
        return {
            "scores": [round(float(s), 6) for s in self.scores],
            "strangers": self.strangers,
            "created": self.created,
            "details": self.details,
        }

    @classmethod
    def from_report(
        cls,
        model: str,
        gallery_faces: int,
        gallery_identities: int,
        report: dict[str, object],
        prior: tuple[tuple[float, float], ...] = (),
    ) -> OpenSetEstimate:
        return cls(
            model=model,
            gallery_faces=gallery_faces,
            gallery_identities=gallery_identities,
            scores=np.asarray(report.get("scores", []), dtype=np.float64),
            prior=prior,
            strangers=int(report.get("strangers", 0)),  # type: ignore[call-overload]
            created=str(report.get("created", "")),
            details=dict(report.get("details") or {}),  # type: ignore[call-overload]
        )
