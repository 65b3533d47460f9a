"""ROC, DET and distance-histogram PNGs (matplotlib, imported only when plotting)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .core import Calibration, logistic, roc_curve


def write_plots(
    distances: np.ndarray, same: np.ndarray, cal: Calibration, out_dir: Path
) -> list[Path]:
    """Write ``roc.png``, ``det.png`` and ``distances.png`` into ``out_dir``."""
    import matplotlib  # optional, matplotlib: the learn and dev extras

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt  # optional, matplotlib: the learn and dev extras

    out_dir.mkdir(parents=True, exist_ok=True)
    d = np.asarray(distances, dtype=np.float64)
    s = np.asarray(same, dtype=bool)
    _, far, tar = roc_curve(d, s)
    title = f"{cal.model} on {cal.dataset}"
    label = f"threshold {cal.threshold:.4f} (FAR {cal.far:.2g}, TAR {cal.tar:.4f})"
    paths = []

    fl_far, fl_frr = 0.5 / cal.n_impostor, 0.5 / cal.n_genuine
    roc = _error_curve(plt, (np.maximum(far, fl_far), fl_far), (tar, None))
    roc.scatter([max(cal.far, fl_far)], [cal.tar], color="red", zorder=3, label=label)
    roc.axvline(cal.target_far, color="grey", ls=":", label=f"target FAR {cal.target_far:g}")
    roc.set_ylabel("true accept rate (TAR)")
    roc.set_title(f"ROC: {title} (AUC {cal.auc:.4f})", fontsize=9)
    roc.legend(fontsize=8, loc="lower right")
    paths.append(_save(roc.figure, out_dir / "roc.png"))

    det = _error_curve(
        plt, (np.maximum(far, fl_far), fl_far), (np.maximum(1 - tar, fl_frr), fl_frr)
    )
    det.scatter(
        [max(cal.far, fl_far)], [max(1 - cal.tar, fl_frr)], color="red", zorder=3, label=label
    )
    det.set_ylabel("false reject rate (FRR)")
    det.set_title(f"DET: {title}", fontsize=9)
    det.legend(fontsize=8, loc="upper right")
    paths.append(_save(det.figure, out_dir / "det.png"))

    fig, ax = plt.subplots(figsize=(7, 4.5))
    bins = np.linspace(float(d.min()), float(d.max()), 60)
    ax.hist(d[s], bins=bins, alpha=0.6, density=True, label=f"genuine ({cal.n_genuine})")
    ax.hist(d[~s], bins=bins, alpha=0.6, density=True, label=f"impostor ({cal.n_impostor})")
    ax.axvline(cal.threshold, color="red", label=label)
    ax.axvspan(*cal.threshold_ci, color="red", alpha=0.12, label="threshold 95% CI")
    ax.set_xlabel("cosine distance")
    ax.set_ylabel("density")
    ax2 = ax.twinx()
    xs = np.linspace(bins[0], bins[-1], 200)
    ax2.plot(xs, logistic(*cal.logistic, xs), color="black", lw=1, ls="--")
    ax2.set_ylabel("fitted P(same | distance)")
    ax2.set_ylim(0, 1.02)
    ax.set_title(f"distances: {title}", fontsize=9)
    ax.legend(fontsize=8, loc="upper right")
    paths.append(_save(fig, out_dir / "distances.png"))
    return paths


def _error_curve(plt, x: tuple[np.ndarray, float], y: tuple[np.ndarray, float | None]):
    """Axes with the curve ``y[0]`` against FAR ``x[0]`` on log scales from their floors (a
    floor of ``None`` keeps that axis linear), gridded; the caller labels and marks it."""
    _, ax = plt.subplots(figsize=(6, 5))
    ax.plot(x[0], y[0], lw=1.5)
    ax.set_xscale("log")
    ax.set_xlim(x[1], 1)
    if y[1] is not None:
        ax.set_yscale("log")
        ax.set_ylim(y[1], 1)
    ax.set_xlabel("false accept rate (FAR)")
    ax.grid(True, which="both", alpha=0.3)
    return ax


def _save(fig: object, path: Path) -> Path:
    import matplotlib.pyplot as plt  # optional, matplotlib: the learn and dev extras

    fig.tight_layout()  # type: ignore[attr-defined]
    fig.savefig(path, dpi=110)  # type: ignore[attr-defined]
    plt.close(fig)  # type: ignore[arg-type]
    return path
