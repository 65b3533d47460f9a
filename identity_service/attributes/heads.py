"""Small MLP heads on the pipeline's 128-d face embeddings: trained with torch, run by numpy.

A head is one hidden layer (ReLU) and a softmax over its classes. The age head has 101 classes
(0..100 years) and reports the expectation as the age. Weights and their provenance (data,
seed, metrics, embedder) are one small ``.npz`` file in the model cache, written by
``faceid train-attributes``; nothing trained is committed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..config import Settings, get_settings
from ..errors import ModelFileMissingError

HEAD_FILES = {
    "age": "faceid-attr-age.npz",
    "gender": "faceid-attr-gender.npz",
    "race": "faceid-attr-race.npz",
}
AGE_BINS = 101


def heads_dir(settings: Settings | None = None) -> Path:
    settings = settings or get_settings()
    return settings.cache_dir / "models"


@dataclass
class Head:
    name: str
    classes: tuple[str, ...]
    w1: np.ndarray
    b1: np.ndarray
    w2: np.ndarray
    b2: np.ndarray
    meta: dict[str, object] = field(default_factory=dict)

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        """``(N, 128)`` embeddings -> ``(N, classes)`` probabilities (rows sum to 1)."""
        x = np.asarray(x, dtype=np.float32).reshape(-1, self.w1.shape[0])
        h = np.maximum(x @ self.w1 + self.b1, 0.0)
        z = h @ self.w2 + self.b2
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def save(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(
            tmp,
            w1=self.w1,
            b1=self.b1,
            w2=self.w2,
            b2=self.b2,
            classes=np.array(self.classes),
            meta=np.array(json.dumps({"name": self.name, **self.meta})),
        )
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: Path) -> Head:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            name = str(meta.pop("name"))
            return cls(
                name=name,
                classes=tuple(str(c) for c in data["classes"]),
                w1=data["w1"].astype(np.float32),
                b1=data["b1"].astype(np.float32),
                w2=data["w2"].astype(np.float32),
                b2=data["b2"].astype(np.float32),
                meta=meta,
            )


def age_from_probabilities(p: np.ndarray) -> np.ndarray:
    return p @ np.arange(p.shape[1], dtype=np.float64)


def load_head(action: str, settings: Settings | None = None) -> Head:
    path = heads_dir(settings) / HEAD_FILES[action]
    if not path.is_file():
        raise ModelFileMissingError(
            f"attribute head {action!r} not trained yet: {path} is missing; "
            "run `faceid train-attributes` to train it from the shared data",
            filename=path.name,
            looked=[str(path)],
        )
    return Head.load(path)


def train_head(
    x: np.ndarray,
    y: np.ndarray,
    classes: tuple[str, ...],
    name: str,
    *,
    seed: int,
    hidden: int = 256,
    epochs: int = 300,
    lr: float = 3e-3,
    weight_decay: float = 1e-4,
    age_sigma: float | None = None,
) -> Head:
    """Full-batch Adam on cross-entropy; with ``age_sigma`` the target is a Gaussian over the
    age bins (label distribution learning) plus an L1 term on the expected age."""
    import torch

    # These heads are tiny: one thread is faster than several fighting over shared cores.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _train(x, y, classes, name, seed, hidden, epochs, lr, weight_decay, age_sigma)
    finally:
        torch.set_num_threads(threads)


def _train(x, y, classes, name, seed, hidden, epochs, lr, weight_decay, age_sigma) -> Head:
    import torch

    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    xt = torch.as_tensor(np.asarray(x, np.float32))
    yt = torch.as_tensor(np.asarray(y, np.int64))
    k = len(classes)
    model = torch.nn.Sequential(
        torch.nn.Linear(xt.shape[1], hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, k)
    )
    with torch.no_grad():
        for layer in (model[0], model[2]):
            layer.weight.normal_(0.0, (2.0 / layer.in_features) ** 0.5, generator=g)
            layer.bias.zero_()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    if age_sigma is not None:
        bins = torch.arange(k, dtype=torch.float32)
        target = torch.exp(-0.5 * ((bins[None, :] - yt[:, None].float()) / age_sigma) ** 2)
        target = target / target.sum(dim=1, keepdim=True)
    # class-balanced weights keep small groups from being ignored
    counts = torch.bincount(yt, minlength=k).float().clamp(min=1)
    for _ in range(epochs):
        opt.zero_grad()
        logits = model(xt)
        if age_sigma is not None:
            logp = torch.log_softmax(logits, dim=1)
            expected = (logp.exp() * bins).sum(dim=1)
            loss = -(target * logp).sum(dim=1).mean() + 0.05 * (expected - yt.float()).abs().mean()
        else:
            weight = (counts.sum() / (k * counts)) ** 0.5
            loss = torch.nn.functional.cross_entropy(logits, yt, weight=weight)
        loss.backward()
        opt.step()
    return Head(
        name=name,
        classes=classes,
        w1=model[0].weight.detach().numpy().T.copy(),
        b1=model[0].bias.detach().numpy().copy(),
        w2=model[2].weight.detach().numpy().T.copy(),
        b2=model[2].bias.detach().numpy().copy(),
        meta={"seed": seed, "hidden": hidden, "epochs": epochs},
    )
