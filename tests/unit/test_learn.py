"""identity_service.training.metric: miners, sampler, fit, checkpoints (torch; skipped without
it)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("pytorch_metric_learning")

from identity_service.training.metric.data import EmbeddingSet, identity_split  # noqa: E402
from identity_service.training.metric.evaluate import embed, evaluate  # noqa: E402
from identity_service.training.metric.mining import RECIPES, make_loss, make_miner  # noqa: E402
from identity_service.training.metric.models import EmbeddingAdapter, SoftmaxLoss  # noqa: E402
from identity_service.training.metric.train import balanced_sampler, fit  # noqa: E402


def clusters(n_classes: int = 24, per: int = 10, dim: int = 16, seed: int = 0) -> EmbeddingSet:
    """Identity in 4 dims, strong class-independent nuisance in the other 12: the identity
    adapter retrieves badly, a learnt one can suppress the nuisance."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_classes, 4)) * 2.0
    labels = np.repeat(np.arange(n_classes), per)
    x = np.concatenate(
        [centres[labels] + 0.3 * rng.normal(size=(len(labels), 4)),
         2.0 * rng.normal(size=(len(labels), dim - 4))], axis=1,
    )  # fmt: skip
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return EmbeddingSet(x.astype(np.float32), labels, [f"p{k}" for k in range(n_classes)])


def hand_made() -> tuple[torch.Tensor, torch.Tensor]:
    """Three classes on a line; distances are easy to reason about."""
    x = torch.tensor([[0.0], [0.1], [0.5], [0.55], [2.0], [2.05]])
    return torch.nn.functional.normalize(
        torch.cat([x, torch.ones_like(x)], 1), dim=1
    ), torch.tensor([0, 0, 1, 1, 2, 2])


@pytest.mark.parametrize("recipe", RECIPES)
def test_miners_return_valid_tuples(recipe):
    data = clusters()
    x = torch.nn.functional.normalize(torch.from_numpy(data.features[:80]), dim=1)
    y = torch.from_numpy(data.labels[:80])
    miner = make_miner(recipe, 0.2)
    if miner is None:
        return
    tuples = miner(x, y)
    assert len(tuples[0]) > 0
    if len(tuples) == 3:
        a, p, n = tuples
        assert torch.all(y[a] == y[p]) and torch.all(a != p) and torch.all(y[a] != y[n])
    else:
        a1, p, a2, n = tuples
        assert torch.all(y[a1] == y[p]) and torch.all(a1 != p) and torch.all(y[a2] != y[n])
    assert float(make_loss(recipe, 0.2)(x, y, tuples)) >= 0


def test_semi_hard_picks_exactly_the_negatives_inside_the_margin():
    x, y = hand_made()
    margin = 0.5
    a, p, n = make_miner("triplet-semi-hard", margin)(x, y)
    d = torch.cdist(x, x)
    got = set(zip(a.tolist(), p.tolist(), n.tolist(), strict=True))
    want = {
        (i, j, k)
        for i in range(6)
        for j in range(6)
        for k in range(6)
        if i != j and y[i] == y[j] and y[k] != y[i] and d[i, j] < d[i, k] < d[i, j] + margin
    }
    assert got == want and want


def test_random_hard_negatives_violate_the_margin():
    x, y = hand_made()
    a, p, n = make_miner("triplet-random-hard", 0.3)(x, y)
    d = torch.cdist(x, x)
    assert len(a) > 0
    assert torch.all(d[a, p] - d[a, n] + 0.3 > 0)


def test_hardest_picks_the_closest_negative():
    x, y = hand_made()
    a, _, n = make_miner("triplet-hardest", 0.2)(x, y)
    d = torch.cdist(x, x)
    d[y[:, None] == y[None, :]] = float("inf")
    assert torch.equal(n, d[a].argmin(dim=1))


def test_sampler_yields_classes_times_samples_batches():
    data = clusters(n_classes=12, per=5)
    sampler = balanced_sampler(data.labels, n_classes=4, n_samples=3)
    order = list(iter(sampler))
    assert len(order) % 12 == 0 and len(order) >= 12
    for start in range(0, len(order), 12):
        labels = data.labels[order[start : start + 12]]
        values, counts = np.unique(labels, return_counts=True)
        assert len(values) == 4 and set(counts) == {3}


def test_fit_improves_map_at_r_on_unseen_identities():
    torch.manual_seed(0)
    split = identity_split(clusters(n_classes=40, per=10), 0.5, seed=0)
    model = EmbeddingAdapter(16, hidden=32)
    before = evaluate(embed(model, split.test.features), split.test.labels, n_impostor=2000)
    loss, miner = make_loss("triplet-semi-hard", 0.2), make_miner("triplet-semi-hard", 0.2)
    sampler = balanced_sampler(split.train.labels, 8, 5, length=400)
    fit(model, loss, miner, sampler, split.train, epochs=8, batch_size=40, lr=1e-2, progress=False)
    after = evaluate(embed(model, split.test.features), split.test.labels, n_impostor=2000)
    assert after.map_at_r > before.map_at_r + 0.1, (before.map_at_r, after.map_at_r)


def test_softmax_baseline_trains_through_fit():
    torch.manual_seed(0)
    data = clusters()
    model = EmbeddingAdapter(16, hidden=32, normalize=False)
    loss = SoftmaxLoss(16, data.n_classes)
    result = fit(model, loss, None, None, data, epochs=3, batch_size=40, lr=1e-2, progress=False)
    assert result.history[-1].loss < result.history[0].loss


def _run(path, epochs, resume):
    data = clusters()
    model = EmbeddingAdapter(16, hidden=32)
    fit(
        model,
        make_loss("triplet-random-hard", 0.2),
        make_miner("triplet-random-hard", 0.2),
        balanced_sampler(data.labels, 6, 4, length=120),
        data,
        epochs=epochs,
        batch_size=24,
        lr=1e-2,
        checkpoint=path,
        resume=resume,
        progress=False,
    )
    return model.state_dict()


def test_checkpoint_resume_reproduces_uninterrupted_training(tmp_path):
    torch.manual_seed(1)
    np.random.seed(1)
    straight = _run(tmp_path / "a.pt", 3, False)
    torch.manual_seed(1)
    np.random.seed(1)
    _run(tmp_path / "b.pt", 2, False)
    torch.manual_seed(99)  # resume must restore the RNG state, not rely on this one
    resumed = _run(tmp_path / "b.pt", 3, True)
    saved = torch.load(tmp_path / "b.pt", weights_only=False)
    assert saved["epoch"] == 3 and len(saved["history"]) == 3
    for key, value in straight.items():
        assert torch.allclose(value, resumed[key], atol=1e-6), key


@pytest.fixture(scope="module")
def real_embeddings(lfw_dir):
    """dlib embeddings of the first 40 LFW people with at least 4 photos, 4 photos each,
    computed here (about 15 s) so the test does not depend on a benchmark's cache."""
    from identity_service import FacePipeline
    from identity_service.training.metric.data import from_names

    people = [d for d in sorted((lfw_dir / "images").iterdir()) if len(list(d.glob("*.jpg"))) >= 4][
        :40
    ]
    photos = [(d.name, p) for d in people for p in sorted(d.glob("*.jpg"))[:4]]
    pipeline = FacePipeline(embedder="dlib-resnet-v1", workers=1)
    outcomes = pipeline.represent_batch([p for _, p in photos], max_faces=1)
    rows = [
        (name, faces[0].embedding)
        for (name, _), faces in zip(photos, outcomes, strict=True)
        if isinstance(faces, list)
    ]
    assert len(rows) >= 150, "nearly every photo must give a face"
    return from_names(np.stack([e for _, e in rows]), [name for name, _ in rows])


def test_a_few_steps_on_real_face_embeddings_lower_the_loss(real_embeddings):
    data = real_embeddings
    torch.manual_seed(0)
    np.random.seed(0)
    train = identity_split(data, 0.5, seed=0).train
    model = EmbeddingAdapter(128, hidden=64)
    loss, miner = make_loss("triplet-all", 0.3), make_miner("triplet-all", 0.3)
    sampler = balanced_sampler(train.labels, 16, 4, length=64 * 6)
    # A fixed batch of the training identities, scored before and after.
    idx = list(iter(sampler))[:64]
    x, y = torch.from_numpy(train.features[idx]), torch.from_numpy(train.labels[idx])

    def batch_loss() -> float:
        with torch.no_grad():
            emb = model.eval()(x)
            return float(loss(emb, y, miner(emb, y)))

    before = batch_loss()
    fit(model, loss, miner, sampler, train, epochs=4, batch_size=64, progress=False)
    after = batch_loss()
    assert after < before, (before, after)
