"""``fit``: one training loop for every loss/miner/sampler and every input (embedding vectors
for adapters, uint8 face crops for the CNN), with per-epoch metrics, resumable checkpoints and a
rich progress bar."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from pytorch_metric_learning.samplers import MPerClassSampler
from rich.progress import Progress
from torch.utils.data import DataLoader, Sampler

from .crops import to_unit
from .data import EmbeddingSet
from .evaluate import embed, evaluate


def balanced_sampler(
    labels: np.ndarray | torch.Tensor, n_classes: int, n_samples: int, length: int | None = None
) -> MPerClassSampler:
    """Batches of ``n_classes`` identities × ``n_samples`` images each (with replacement for
    identities that have fewer); use ``batch_size = n_classes * n_samples``."""
    labels = np.asarray(labels)
    length = length or max(len(labels), n_classes * n_samples)
    length -= length % (n_classes * n_samples)
    return MPerClassSampler(
        labels, m=n_samples, batch_size=n_classes * n_samples, length_before_new_iter=length
    )


@dataclass
class EpochLog:
    epoch: int
    loss: float
    n_mined: float  # mean tuples per batch (pairs or triplets); 0 when the loss uses all
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass
class FitResult:
    history: list[EpochLog]
    model: torch.nn.Module

    def to_dict(self) -> list[dict]:
        return [asdict(h) for h in self.history]


def _rng_state() -> dict:
    return {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: Path, model, loss, optimizer, epoch: int, history, sampler=None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(
        {
            "model": model.state_dict(),
            "loss": loss.state_dict(),
            "optimizer": optimizer.state_dict(),
            "epoch": epoch,
            "history": [asdict(h) for h in history],
            "rng": _rng_state(),
            # MPerClassSampler reshuffles its own label list in place each epoch.
            "sampler": dict(vars(sampler)) if sampler is not None else None,
        },
        tmp,
    )
    tmp.replace(path)  # a crash mid-save never leaves a torn checkpoint


def load_checkpoint(path: Path, model, loss, optimizer, sampler=None) -> tuple[int, list[EpochLog]]:
    """Restores model, loss, optimizer, sampler and RNG state; returns (epoch, history)."""
    state = torch.load(path, map_location="cpu", weights_only=False)
    model.load_state_dict(state["model"])
    loss.load_state_dict(state["loss"])
    optimizer.load_state_dict(state["optimizer"])
    _set_rng_state(state["rng"])
    if sampler is not None and state.get("sampler"):
        vars(sampler).update(state["sampler"])
    return state["epoch"], [EpochLog(**h) for h in state["history"]]


def _count(indices) -> int:
    return 0 if indices is None else len(indices[0])


def fit(
    model: torch.nn.Module,
    loss: torch.nn.Module,
    miner: Callable | None,
    sampler: Sampler | None,
    train: EmbeddingSet | torch.utils.data.Dataset,
    *,
    epochs: int = 10,
    batch_size: int = 256,
    lr: float = 1e-3,
    weight_decay: float = 1e-4,
    device: str = "cpu",
    eval_set: EmbeddingSet | None = None,
    checkpoint: Path | None = None,
    resume: bool = False,
    progress: bool = True,
    on_epoch: Callable[[EpochLog], None] | None = None,
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> FitResult:
    """Train ``model`` (and the loss's own parameters, e.g. a softmax head) with Adam.

    ``loss(embeddings, labels, indices_tuple)`` follows PML; ``miner(embeddings, labels)`` picks
    the tuples (None: all of the batch). ``sampler=None`` shuffles. ``eval_set`` adds one-shot
    metrics (MAP@R, P@1, verification) per epoch. With ``checkpoint`` the state is saved after
    every epoch; ``resume=True`` continues from it if it exists. Batches are moved to
    ``device`` first: uint8 crops become [0, 1] floats there, then ``transform`` (training
    only, e.g. :class:`.crops.FlipJitter`) augments them on the device.
    """
    loader = _loader(train, batch_size, sampler, device)
    model.to(device)
    loss.to(device)
    params = [*model.parameters(), *loss.parameters()]
    optimizer = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    step = _Step(model, loss, miner, optimizer, device, transform)
    start, history = 0, []
    if resume and checkpoint is not None and Path(checkpoint).exists():
        start, history = load_checkpoint(Path(checkpoint), model, loss, optimizer, sampler)
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("training", total=(epochs - start) * len(loader))
        for epoch in range(start + 1, epochs + 1):

            def advance(mean_loss: float, epoch: int = epoch) -> None:
                description = f"epoch {epoch}/{epochs} loss {mean_loss:.4f}"
                bar.update(task, advance=1, description=description)

            log = EpochLog(epoch, *step.epoch(loader, advance))
            if eval_set is not None:
                out = embed(model, eval_set.features, device)
                log.metrics = evaluate(out, eval_set.labels).to_dict()
            history.append(log)
            if on_epoch:
                on_epoch(log)
            if checkpoint is not None:
                save_checkpoint(Path(checkpoint), model, loss, optimizer, epoch, history, sampler)
    return FitResult(history, model)


def _loader(
    train: EmbeddingSet | torch.utils.data.Dataset, batch_size: int, sampler, device: str
) -> DataLoader:
    """Batches of ``train`` in ``sampler``'s order (None: shuffled); a last partial one is
    dropped."""
    return DataLoader(
        train.torch() if isinstance(train, EmbeddingSet) else train,
        batch_size=batch_size,
        sampler=sampler,
        shuffle=sampler is None,
        drop_last=True,
        pin_memory=str(device).startswith("cuda"),
    )


@dataclass
class _Step:
    """What one optimisation step of :func:`fit` uses."""

    model: torch.nn.Module
    loss: torch.nn.Module
    miner: Callable | None
    optimizer: torch.optim.Optimizer
    device: str
    transform: Callable[[torch.Tensor], torch.Tensor] | None

    def epoch(self, loader: DataLoader, advance: Callable[[float], None]) -> tuple[float, float]:
        """One pass over ``loader``: the mean loss and mean mined tuples per batch;
        ``advance`` gets the running mean loss after each batch."""
        cuda = str(self.device).startswith("cuda")
        self.model.train()
        total, mined, batches = 0.0, 0, 0
        for x, y in loader:
            x = to_unit(x.to(self.device, non_blocking=cuda))
            y = y.to(self.device, non_blocking=cuda)
            emb = self.model(self.transform(x) if self.transform is not None else x)
            indices = self.miner(emb, y) if self.miner is not None else None
            value = self.loss(emb, y, indices)
            self.optimizer.zero_grad()
            value.backward()
            self.optimizer.step()
            total += value.item()
            mined += _count(indices)
            batches += 1
            advance(total / batches)
        return total / max(batches, 1), mined / max(batches, 1)
