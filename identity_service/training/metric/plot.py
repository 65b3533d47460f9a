"""2-D embedding scatter plots (PNG), like the seed's MNIST figures."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def pca_2d(x: np.ndarray) -> np.ndarray:
    x = x - x.mean(axis=0)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    return x @ vt[:2].T


def scatter_2d(
    embeddings: np.ndarray, labels: np.ndarray, names: list[str], path: Path, title: str = ""
) -> Path:
    """Scatter of 2-d points (PCA first if wider), one colour per label."""
    import matplotlib  # optional, matplotlib: the learn and dev extras

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # optional, matplotlib: the learn and dev extras

    points = embeddings if embeddings.shape[1] == 2 else pca_2d(embeddings)
    fig, ax = plt.subplots(figsize=(7, 6))
    cmap = plt.get_cmap("tab10" if len(names) <= 10 else "tab20")
    for k, name in enumerate(names):
        sel = labels == k
        label = name.replace("_", " ")
        ax.scatter(*points[sel].T, s=12, alpha=0.7, color=cmap(k % cmap.N), label=label)
    ax.legend(fontsize=7, loc="best")
    ax.set_title(title)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
