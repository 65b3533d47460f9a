"""The 1:N identification protocol (as NIST FRVT 1:N reports it) on the shared data.

People: LFW people with two or more photos are split in half by a seeded shuffle. The first half
are *mated subjects*: their first photo is enrolled, their next photos (up to 10) are mated
probes. The second half are never enrolled: their photos (up to 10 each) are *non-mated probes*.
Distractor identities fill the gallery to each size: LFW people with one photo first (the
probes' own population), then UTKFace faces.
UTKFace has no identity labels and holds many people more than once (over half its faces have a
neighbour at same-person similarity), which would break "one identity each" and make the
leave-one-identity-out calibration see genuine pairs as impostors: its faces are thinned, in
seeded order, to those that no model of the run scores at or above its 1:1 threshold at FAR
1e-5 (from its LFW impostor tail) against a face already kept. Galleries hold one face per
identity.

Figures per model and gallery size: rank-1 and rank-5 of mated probes; DIR (= 1 - FNIR: the
mated probe's identity at rank 1 and accepted) at FPIR 1e-3, 1e-2 and 1e-1, with the threshold
set on the non-mated probes themselves; and the product's own **calibrated operating point**
(leave-one-identity-out on the gallery, :mod:`identity_service.calibration.open_set`, exactly as
``find`` computes it), with the FPIR and DIR it gives on the probes: calibration and probes are
disjoint. The model's prior rule (for galleries too small to calibrate) is measured the same way.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from ...calibration.metrics import accuracy_interval
from ...calibration.open_set import (
    OpenSetEstimate,
    leave_one_out_scores,
    similarity_at_fpir,
)
from .identification_data import Image, by_person

FPIRS = (1e-3, 1e-2, 1e-1)
SPLIT_SEED = 20261205
MAX_PROBES_PER_PERSON = 10


@dataclass
class Protocol:
    images: list[Image]
    gallery_subjects: list[int]  # image index of each mated subject's enrolled photo
    mated: list[tuple[int, int]]  # (probe image, its subject's position in gallery_subjects)
    nonmated: list[int]
    distractors: list[int]

    def max_size(self) -> int:
        return len(self.gallery_subjects) + len(self.distractors)

    def gallery(self, size: int) -> list[int]:
        """Image indices of a gallery of ``size`` identities: every subject, then distractors."""
        if size < len(self.gallery_subjects):
            raise ValueError(f"a gallery needs at least {len(self.gallery_subjects)} identities")
        return self.gallery_subjects + self.distractors[: size - len(self.gallery_subjects)]


def dedupe_distractors(protocol: Protocol, models: list[tuple[np.ndarray, float]]) -> Protocol:
    """``protocol`` with its UTKFace distractors thinned to probable distinct people: in seeded
    order, a face is kept unless one of ``models`` ((vectors, same-person similarity)) scores
    it at or above its threshold against a face already kept."""
    utk = [i for i in protocol.distractors if protocol.images[i].source == "utkface"]
    linked = np.zeros((len(utk), len(utk)), dtype=bool)
    for vectors, threshold in models:
        chosen = vectors[utk]
        linked |= (chosen @ chosen.T) >= threshold
    kept = np.zeros(len(utk), dtype=bool)
    for pos in range(len(utk)):  # distractors are already in seeded order
        kept[pos] = not linked[pos, kept].any()
    keep = {utk[pos] for pos in np.flatnonzero(kept)}
    distractors = [
        i for i in protocol.distractors if protocol.images[i].source != "utkface" or i in keep
    ]
    return Protocol(
        protocol.images, protocol.gallery_subjects, protocol.mated, protocol.nonmated, distractors
    )


def make_protocol(images: list[Image], seed: int = SPLIT_SEED) -> Protocol:
    people = by_person(images)
    rng = np.random.default_rng(seed)
    subjects = sorted(p for p, imgs in people.items() if len(imgs) >= 2)
    rng.shuffle(subjects)
    half = len(subjects) // 2
    index = {(im.source, im.relpath): i for i, im in enumerate(images)}

    def ids(imgs: list[Image]) -> list[int]:
        return [index[(im.source, im.relpath)] for im in imgs]

    gallery_subjects, mated = [], []
    for pos, person in enumerate(subjects[:half]):
        first, *rest = ids(people[person])
        gallery_subjects.append(first)
        mated += [(probe, pos) for probe in rest[:MAX_PROBES_PER_PERSON]]
    nonmated = [i for p in subjects[half:] for i in ids(people[p])[:MAX_PROBES_PER_PERSON]]
    # LFW people first (the probes' population), UTKFace faces only beyond them.
    singles = [i for p, imgs in people.items() if len(imgs) == 1 for i in ids(imgs)]
    distractors = []
    for source in ("lfw", "utkface"):
        part = [i for i in singles if images[i].source == source]
        rng.shuffle(part)
        distractors += part
    return Protocol(images, gallery_subjects, mated, nonmated, distractors)


@dataclass
class SizeReport:
    gallery_identities: int
    mated_probes: int
    nonmated_probes: int
    rank1: float
    rank5: float
    dir_at_fpir: dict[str, float]
    calibrated: dict[str, object]
    prior_rule: dict[str, object] | None = None
    det: dict[str, list[float]] = field(default_factory=dict)


def top_k(probes: np.ndarray, gallery: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact cosine top-k (the embedder is measured here, not the index)."""
    sims_all = probes @ gallery.T
    k = min(k, gallery.shape[0])
    part = np.argpartition(-sims_all, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(sims_all, part, axis=1), axis=1)
    ids = np.take_along_axis(part, order, axis=1)
    return np.take_along_axis(sims_all, ids, axis=1), ids


def evaluate_size(
    protocol: Protocol,
    vectors: np.ndarray,
    size: int,
    *,
    model: str,
    target_fpir: float = 1e-2,
    prior: tuple[tuple[float, float], ...] = (),
    max_searches: int = 10_000,
) -> SizeReport:
    gallery = vectors[protocol.gallery(size)]
    mated_vec = vectors[[p for p, _ in protocol.mated]]
    truth = np.array([pos for _, pos in protocol.mated])
    sims, ids = top_k(mated_vec, gallery, 5)
    rank5_hit = (ids == truth[:, None]).any(axis=1)
    scores = _TopScores(
        sims[:, 0], ids[:, 0] == truth, top_k(vectors[protocol.nonmated], gallery, 1)[0][:, 0]
    )
    persons = np.array([protocol.images[i].person for i in protocol.nonmated])
    dir_at = {
        f"{f:g}": scores.dir_and_fpir(similarity_at_fpir(scores.nonmated_top, f))[0] for f in FPIRS
    }
    estimate = _leave_one_out(gallery, model, max_searches, prior)
    prior_rule = None
    if prior:
        prior_only = OpenSetEstimate(model, size, size, np.zeros(0), prior)
        prior_rule = scores.rule(prior_only, target_fpir)
    return SizeReport(
        gallery_identities=size,
        mated_probes=len(protocol.mated),
        nonmated_probes=len(protocol.nonmated),
        rank1=float(scores.rank1_hit.mean()),
        rank5=float(rank5_hit.mean()),
        dir_at_fpir=dir_at,
        calibrated=scores.calibrated(estimate, target_fpir, persons),
        prior_rule=prior_rule,
        det=det_curve(scores.mated_top, scores.rank1_hit, scores.nonmated_top),
    )


@dataclass(frozen=True)
class _TopScores:
    """The top similarity of each mated probe (and whether it was the right identity) and of
    each non-mated probe, against one gallery."""

    mated_top: np.ndarray
    rank1_hit: np.ndarray
    nonmated_top: np.ndarray

    def dir_and_fpir(self, similarity: float) -> tuple[float, float]:
        # The product's decision: distance (1 - similarity) at or under the threshold.
        threshold = 1.0 - similarity
        accepted_mated = (1.0 - self.mated_top) <= threshold
        fpir = float(np.mean((1.0 - self.nonmated_top) <= threshold))
        return float(np.mean(self.rank1_hit & accepted_mated)), fpir

    def rule(self, estimate: OpenSetEstimate, target_fpir: float) -> dict[str, object]:
        """The threshold ``estimate`` sets for ``target_fpir``, and the FPIR and DIR it gives."""
        point = estimate.operating_point(target_fpir)
        assert point is not None
        dir_p, fpir_p = self.dir_and_fpir(1.0 - point.threshold)
        return {"threshold": point.threshold, "measured_fpir": fpir_p, "dir": dir_p}

    def calibrated(
        self, estimate: OpenSetEstimate, target_fpir: float, persons: np.ndarray
    ) -> dict[str, object]:
        """The calibrated operating point measured: its FPIR (with an interval that resamples
        whole strangers), the strangers it accepts, and its DIR."""
        point = estimate.operating_point(target_fpir)
        assert point is not None
        dir_cal, fpir_cal = self.dir_and_fpir(1.0 - point.threshold)
        # Photos of one stranger are accepted or not together: resample whole people.
        accepted = (1.0 - self.nonmated_top) <= point.threshold
        return {
            "target_fpir": target_fpir,
            "threshold": point.threshold,
            "searches": estimate.n_searches,
            "measured_fpir": fpir_cal,
            "measured_fpir_ci95_by_person": list(accuracy_interval(accepted, persons)),
            "strangers_accepted": int(accepted.sum()),
            "distinct_strangers_accepted": len(set(persons[accepted].tolist())),
            "ratio_to_target": fpir_cal / target_fpir,
            "dir": dir_cal,
            "source": point.source,
        }


def _leave_one_out(
    gallery: np.ndarray, model: str, max_searches: int, prior: tuple[tuple[float, float], ...]
) -> OpenSetEstimate:
    """The calibration ``find`` makes, on this gallery (one face per identity)."""
    n = len(gallery)
    rng = np.random.default_rng(0)
    pick = np.sort(rng.choice(n, min(max_searches, n), replace=False))
    owners = np.arange(n)
    scores = leave_one_out_scores(
        gallery[pick],
        owners[pick],
        np.ones(len(pick), dtype=int),
        lambda q, k: top_k(q, gallery, k),
        lambda ids: ids,
        n,
    )
    return OpenSetEstimate(model, n, n, np.sort(scores)[::-1], prior)


def det_curve(
    mated_top: np.ndarray, rank1_hit: np.ndarray, nonmated_top: np.ndarray
) -> dict[str, list[float]]:
    """FNIR against FPIR at thresholds through the non-mated scores (log-spaced FPIRs)."""
    fpirs = np.unique(np.clip(np.logspace(-3.5, 0, 60), 1.0 / len(nonmated_top), 1.0 - 1e-9))
    fnir = []
    for f in fpirs:
        t = similarity_at_fpir(nonmated_top, float(f))
        fnir.append(float(1.0 - np.mean(rank1_hit & (mated_top >= t))))
    return {"fpir": fpirs.tolist(), "fnir": fnir}


def impostor_tail(
    vectors: np.ndarray, persons: list[str], fars: tuple[float, ...] = ()
) -> tuple[tuple[float, float], ...]:
    """(FAR, similarity) of 1:1 impostor pairs among ``vectors`` (every pair of different
    people): the model prior ``find`` scales to small galleries."""
    fars = fars or tuple(10.0**-e for e in np.arange(1, 6.5, 0.5))
    labels = np.unique(persons, return_inverse=True)[1]
    counts = np.zeros(4096, np.int64)  # histogram of similarities on [-1, 1]
    edges = np.linspace(-1.0, 1.0, len(counts) + 1)
    for start in range(0, len(vectors), 1024):
        block = vectors[start : start + 1024] @ vectors.T
        rows = np.arange(start, min(start + 1024, len(vectors)))
        mask = (labels[rows, None] != labels[None, :]) & (np.arange(len(vectors)) > rows[:, None])
        counts += np.histogram(block[mask], bins=edges)[0]
    above = np.cumsum(counts[::-1])[::-1] / counts.sum()  # share at or above each bin's start
    tail = []
    for far in fars:
        bin_ = int(np.searchsorted(-above, -far, side="right"))  # first bin with share <= far
        tail.append((float(far), float(edges[min(bin_, len(counts) - 1)])))
    return tuple(tail)


def report_dict(reports: list[SizeReport]) -> list[dict[str, object]]:
    return [asdict(r) for r in reports]
