"""Training the attribute heads (torch, CPU): one hidden layer, exported as a :class:`Head`.

Two regimes, chosen by ``batch_size``:

- full batch (``None``): AdamW over the whole set each step. Right for the age, gender and race
  heads (a few thousand 128-d embeddings; a full pass costs less than a minibatch loop).
- minibatch: AdamW with a one-cycle schedule, dropout and label smoothing. Right for the
  emotion head (57k rows of 519 features, where full-batch steps take tens of minutes).

With ``standardize`` the inputs are centred and scaled by the training set's statistics, which
are then folded into the first layer, so the exported graph still takes raw features.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...attributes.heads import Head, MlpWeights


@dataclass(frozen=True)
class Recipe:
    hidden: int = 256
    epochs: int = 300
    lr: float = 3e-3
    weight_decay: float = 1e-4
    age_sigma: float | None = None  # age: Gaussian label distribution over the bins
    batch_size: int | None = None  # None: full batch
    dropout: float = 0.0  # minibatch only
    label_smoothing: float = 0.0  # minibatch only
    standardize: bool = False


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
    recipe: Recipe | None = None,
) -> Head:
    """Train one head. Full-batch cross-entropy by default; with ``age_sigma`` the target is a
    Gaussian over the age bins (label distribution learning) plus an L1 term on the expected
    age. A ``recipe`` replaces the keyword settings."""
    import torch  # optional, torch: the learn extra

    recipe = recipe or Recipe(hidden, epochs, lr, weight_decay, age_sigma)
    x = np.asarray(x, np.float32)
    mean, scale = np.zeros(x.shape[1], np.float32), np.ones(x.shape[1], np.float32)
    if recipe.standardize:
        mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-6
    threads = torch.get_num_threads()
    # Full-batch heads are tiny: one thread beats several fighting over shared cores.
    torch.set_num_threads(threads if recipe.batch_size else 1)
    try:
        weights = _fit((x - mean) / scale, y, len(classes), seed, recipe)
    finally:
        torch.set_num_threads(threads)
    meta: dict[str, object] = {"seed": seed, "hidden": recipe.hidden, "epochs": recipe.epochs}
    if recipe.batch_size:
        meta.update(batch_size=recipe.batch_size, dropout=recipe.dropout)
    return Head.from_weights(name, tuple(classes), fold_standardization(weights, mean, scale), meta)


def fold_standardization(weights: MlpWeights, mean: np.ndarray, scale: np.ndarray) -> MlpWeights:
    """Weights taking raw ``x`` that equal ``weights`` applied to ``(x - mean) / scale``."""
    w1 = weights.w1 / scale[:, None]
    return MlpWeights(w1=w1, b1=weights.b1 - mean @ w1, w2=weights.w2, b2=weights.b2)


def _fit(x: np.ndarray, y: np.ndarray, k: int, seed: int, recipe: Recipe) -> MlpWeights:
    import torch  # optional, torch: the learn extra

    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    xt = torch.as_tensor(x)
    yt = torch.as_tensor(np.asarray(y, np.int64))
    first, last = torch.nn.Linear(xt.shape[1], recipe.hidden), torch.nn.Linear(recipe.hidden, k)
    with torch.no_grad():
        for layer in (first, last):
            layer.weight.normal_(0.0, (2.0 / layer.in_features) ** 0.5, generator=g)
            layer.bias.zero_()
    drop = recipe.dropout if recipe.batch_size else 0.0
    model = torch.nn.Sequential(
        torch.nn.Dropout(drop), first, torch.nn.ReLU(), torch.nn.Dropout(drop), last
    )
    opt = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    if recipe.batch_size:
        _minibatch(model, opt, xt, yt, recipe, g)
    else:
        _full_batch(model, opt, xt, yt, k, recipe)
    return MlpWeights(
        w1=first.weight.detach().numpy().T.copy(),
        b1=first.bias.detach().numpy().copy(),
        w2=last.weight.detach().numpy().T.copy(),
        b2=last.bias.detach().numpy().copy(),
    )


def _full_batch(model, opt, xt, yt, k: int, recipe: Recipe) -> None:
    import torch  # optional, torch: the learn extra

    if recipe.age_sigma is not None:
        bins = torch.arange(k, dtype=torch.float32)
        target = torch.exp(-0.5 * ((bins[None, :] - yt[:, None].float()) / recipe.age_sigma) ** 2)
        target = target / target.sum(dim=1, keepdim=True)
    # class-balanced weights keep small groups from being ignored
    counts = torch.bincount(yt, minlength=k).float().clamp(min=1)
    weight = (counts.sum() / (k * counts)) ** 0.5
    for _ in range(recipe.epochs):
        opt.zero_grad()
        logits = model(xt)
        if recipe.age_sigma is not None:
            logp = torch.log_softmax(logits, dim=1)
            expected = (logp.exp() * bins).sum(dim=1)
            loss = -(target * logp).sum(dim=1).mean() + 0.05 * (expected - yt.float()).abs().mean()
        else:
            loss = torch.nn.functional.cross_entropy(logits, yt, weight=weight)
        loss.backward()
        opt.step()


def _minibatch(model, opt, xt, yt, recipe: Recipe, g) -> None:
    import torch  # optional, torch: the learn extra

    size = int(recipe.batch_size or 1)
    steps = recipe.epochs * -(-len(xt) // size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=recipe.lr, total_steps=steps)
    model.train()
    for _ in range(recipe.epochs):
        order = torch.randperm(len(xt), generator=g)
        for start in range(0, len(xt), size):
            rows = order[start : start + size]
            loss = torch.nn.functional.cross_entropy(
                model(xt[rows]), yt[rows], label_smoothing=recipe.label_smoothing
            )
            opt.zero_grad()
            loss.backward()
            opt.step()
            schedule.step()
    model.eval()
