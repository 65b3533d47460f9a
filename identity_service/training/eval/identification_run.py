"""``faceid eval identification``: every model and gallery size of the 1:N protocol, the peer,
the JSON report and the DET plot."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ...calibration.open_set import prior_similarity
from ...config import Settings
from ...models import MODELS
from ...pipeline import FacePipeline
from .identification import (
    Protocol,
    SizeReport,
    dedupe_distractors,
    det_curve,
    evaluate_size,
    impostor_tail,
    make_protocol,
)
from .identification_data import embed_all, embed_peer, list_images

PEER_RULE = 0.6  # face_recognition's default tolerance: Euclidean distance of raw descriptors


@dataclass
class ModelReport:
    model: str
    detector: str
    sizes: list[SizeReport]
    impostor_tail: list[tuple[float, float]] = field(default_factory=list)


@dataclass
class IdentificationReport:
    protocol: dict[str, object]
    models: list[ModelReport]
    peer: dict[str, object] | None = None

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def run(
    settings: Settings,
    models: list[str],
    sizes: list[int],
    *,
    target_fpir: float = 1e-2,
    workers: int = 2,
    peer: bool = True,
    progress: Callable[[str], None] = lambda _: None,
) -> IdentificationReport:
    images = list_images(settings.shared_dir)
    protocol = make_protocol(images)
    embedded = _embed(settings, images, models, workers, progress)
    tails = {name: prior_source_tail(protocol, v) for name, (v, _, _) in embedded.items()}
    protocol = dedupe_distractors(
        protocol,
        [(v, prior_similarity(tails[name], 1, 1e-5)) for name, (v, _, _) in embedded.items()],
    )
    sizes = sorted({min(s, protocol.max_size()) for s in sizes})
    reports = []
    for name, (vectors, detector, model) in embedded.items():
        spec = MODELS.get(name)
        prior = spec.impostor_tail if spec else ()
        reports.append(
            ModelReport(
                model,
                detector,
                [
                    evaluate_size(
                        protocol, vectors, size, model=model, target_fpir=target_fpir, prior=prior
                    )
                    for size in sizes
                ],
                list(tails[name]),
            )
        )
    peer_report = None
    if peer:
        progress("embedding with face_recognition's descriptors (cached)")
        raw = embed_peer(settings.shared_dir, images, settings.cache_dir, settings, workers)
        peer_report = {"sizes": [peer_size(protocol, raw, size) for size in sizes]}
    summary = _summary(protocol, sizes, target_fpir, sum(im.source == "utkface" for im in images))
    return IdentificationReport(protocol=summary, models=reports, peer=peer_report)


def _embed(
    settings: Settings,
    images: list,
    models: list[str],
    workers: int,
    progress: Callable[[str], None],
) -> dict[str, tuple[np.ndarray, str, str]]:
    """Per model name: the vectors of ``images`` (cached), its detector and its model tag."""
    embedded = {}
    for name in models:
        progress(f"embedding {len(images):,} images with {name} (cached)")
        with FacePipeline(embedder=name, settings=settings, workers=workers) as pipeline:
            vectors = embed_all(pipeline, settings.shared_dir, images, settings.cache_dir)
            embedded[name] = (vectors, pipeline.detector.name, pipeline.model)
    return embedded


def _summary(
    protocol: Protocol, sizes: list[int], target_fpir: float, all_utk: int
) -> dict[str, object]:
    return {
        "split_seed": "make_protocol default",
        "mated_subjects": len(protocol.gallery_subjects),
        "mated_probes": len(protocol.mated),
        "nonmated_probes": len(protocol.nonmated),
        "distractors_available": len(protocol.distractors),
        "utkface_kept": sum(protocol.images[i].source == "utkface" for i in protocol.distractors),
        "utkface_all": all_utk,
        "sizes": sizes,
        "target_fpir": target_fpir,
    }


def prior_source_tail(protocol: Protocol, vectors: np.ndarray) -> tuple[tuple[float, float], ...]:
    """The impostor tail measured on the LFW people that are not non-mated probes here (the
    registry's prior is measured the same way, so the prior rule's check stays honest)."""
    nonmated = set(protocol.nonmated)
    keep = [i for i, im in enumerate(protocol.images) if im.source == "lfw" and i not in nonmated]
    return impostor_tail(vectors[keep], [protocol.images[i].person for i in keep])


def peer_size(protocol: Protocol, raw: np.ndarray, size: int) -> dict[str, object]:
    """face_recognition's rule on the same probes: nearest gallery face by Euclidean distance
    of raw descriptors, a match when it is at most 0.6."""
    gallery = raw[protocol.gallery(size)]
    truth = np.array([pos for _, pos in protocol.mated])

    def nearest(probes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        d2 = (probes**2).sum(1)[:, None] - 2 * probes @ gallery.T + (gallery**2).sum(1)[None]
        best = np.argmin(d2, axis=1)
        return np.sqrt(np.maximum(d2[np.arange(len(probes)), best], 0)), best

    mated_d, mated_id = nearest(raw[[p for p, _ in protocol.mated]])
    nonmated_d, _ = nearest(raw[protocol.nonmated])
    hit = mated_id == truth
    # As a similarity for the DET curve: the negated distance.
    return {
        "gallery_identities": size,
        "rank1": float(hit.mean()),
        "rule": f"Euclidean distance <= {PEER_RULE}",
        "fpir_at_rule": float(np.mean(nonmated_d <= PEER_RULE)),
        "dir_at_rule": float(np.mean(hit & (mated_d <= PEER_RULE))),
        "det": det_curve(-mated_d, hit, -nonmated_d),
    }


def write(report: IdentificationReport, out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "identification.json"
    path.write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    positions = sorted({0, len(report.protocol["sizes"]) - 1})  # type: ignore[arg-type]
    plots = [
        write_det_plot(report, at, out_dir / f"identification_det_{size}.png")
        for at in positions
        for size in [report.protocol["sizes"][at]]  # type: ignore[index]
    ]
    return [path, *plots]


def write_det_plot(report: IdentificationReport, at: int, path: Path) -> Path:
    """FNIR against FPIR for the ``at``-th gallery size, one curve per model and the peer,
    with each model's calibrated operating point marked."""
    import matplotlib  # optional, matplotlib: the learn and dev extras

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt  # optional, matplotlib: the learn and dev extras

    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    for model in report.models:
        chosen = model.sizes[at]
        line = ax.loglog(chosen.det["fpir"], chosen.det["fnir"], label=model.model)[0]
        cal = chosen.calibrated
        ax.scatter(
            [max(float(cal["measured_fpir"]), 1e-4)],  # type: ignore[arg-type]
            [1 - float(cal["dir"])],  # type: ignore[arg-type]
            color=line.get_color(),
            marker="o",
            zorder=3,
        )
    if report.peer:
        chosen = report.peer["sizes"][at]  # type: ignore[index]
        ax.loglog(
            chosen["det"]["fpir"], chosen["det"]["fnir"], "k--", label="peer: face_recognition"
        )
        ax.scatter([chosen["fpir_at_rule"]], [1 - chosen["dir_at_rule"]], color="k", marker="x")
    size = report.models[0].sizes[at].gallery_identities if report.models else 0
    ax.set_xlabel("FPIR (non-mated probes accepted)")
    ax.set_ylabel("FNIR (mated probes not found at rank 1)")
    ax.set_title(
        f"1:N DET, {size:,}-identity gallery (dots: calibrated at target; x: 0.6 rule)", fontsize=9
    )
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
