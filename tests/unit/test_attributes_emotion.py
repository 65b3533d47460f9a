"""The emotion head: FER-model features, standardisation folded into the graph, minibatch fit."""

from __future__ import annotations

import numpy as np
import pytest

from identity_service.attributes import Head, MlpWeights
from identity_service.attributes.emotion import (
    FEATURE_DIM,
    EmotionModel,
)
from identity_service.attributes.heads import probabilities_from_features
from identity_service.attributes.labels import EMOTIONS
from identity_service.config import get_settings
from identity_service.errors import ModelError
from identity_service.training.attributes.fer import read_fer
from identity_service.training.attributes.fit import Recipe, fold_standardization, train_head

FER_DIR = get_settings().shared_dir / "data" / "fer2013"


def test_folded_standardization_equals_standardizing_the_input():
    rng = np.random.default_rng(0)
    w = MlpWeights(rng.normal(size=(5, 4)), rng.normal(size=4), rng.normal(size=(4, 3)), [0, 1, 2])
    mean, scale = rng.normal(3, 1, 5).astype(np.float32), rng.uniform(0.5, 4, 5).astype(np.float32)
    x = rng.normal(3, 2, size=(50, 5)).astype(np.float32)
    folded = Head.from_weights("t", ("a", "b", "c"), fold_standardization(w, mean, scale))
    plain = Head.from_weights("t", ("a", "b", "c"), w)
    np.testing.assert_allclose(
        folded.probabilities(x), plain.probabilities((x - mean) / scale), atol=1e-5
    )


def test_minibatch_recipe_learns_features_on_very_different_scales():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 600)
    x = rng.normal(size=(600, 8)) * np.array([1e3, 1e-3, 1, 1, 1, 1, 1, 1])
    x[:, 0] += 1e4 * y  # the class lives in a huge feature; the others are noise
    recipe = Recipe(hidden=16, epochs=15, lr=1e-2, batch_size=32, dropout=0.1, standardize=True)
    head = train_head(x.astype(np.float32), y, ("a", "b", "c"), "t", seed=0, recipe=recipe)
    assert head.meta["batch_size"] == 32
    assert (head.probabilities(x.astype(np.float32)).argmax(1) == y).mean() > 0.95


def test_fer_listing_uses_the_official_splits_and_a_seeded_sample():
    items = read_fer(FER_DIR, limit_per_split=20)
    assert [i.split for i in items].count("train") == 20
    assert [i.split for i in items].count("validation") == 20
    assert items == read_fer(FER_DIR, limit_per_split=20)
    for item in items:
        assert item.relpath.startswith(item.split + "/")
        assert (FER_DIR / item.relpath).is_file() and 0 <= item.label < len(EMOTIONS)


@pytest.fixture(scope="module")
def fer_model():
    return EmotionModel(get_settings(), load_trained=False)


def test_features_are_the_face_and_its_mirror(fer_model):
    rng = np.random.default_rng(2)
    crop = rng.integers(0, 255, size=(112, 112, 3), dtype=np.uint8)
    both = fer_model.features([crop, crop[:, ::-1]])
    assert both.shape == (2, 2, FEATURE_DIM) and np.isfinite(both).all()
    np.testing.assert_allclose(both[0, 0], both[1, 1], atol=1e-5)  # mirror of the mirror
    assert not np.allclose(both[0, 0], both[0, 1])


def test_a_head_answers_from_features_averaged_over_views(fer_model):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(40, FEATURE_DIM)).astype(np.float32)
    head = train_head(x, rng.integers(0, 7, 40), EMOTIONS, "emotion", seed=0, hidden=8, epochs=3)
    with_head = EmotionModel(get_settings(), head=head, load_trained=False)
    assert with_head.source == "fer-mobilefacenet+faceid-attr-emotion"
    assert fer_model.source == "fer-mobilefacenet" and fer_model.head is None
    crops = [rng.integers(0, 255, size=(112, 112, 3), dtype=np.uint8) for _ in range(3)]
    p = with_head.probabilities(crops)
    np.testing.assert_allclose(p, probabilities_from_features(head, fer_model.features(crops)))
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-5)


def test_a_head_for_other_features_is_a_typed_error():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(20, 128)).astype(np.float32)
    head = train_head(x, rng.integers(0, 7, 20), EMOTIONS, "emotion", seed=0, hidden=4, epochs=2)
    with pytest.raises(ModelError, match="519"):
        EmotionModel(get_settings(), head=head, load_trained=False)


def test_fer_features_from_worker_processes_match_one_process(monkeypatch, tmp_path):
    """The pool rebuilds the pipeline in each worker, by the embedder's name (a TTA embedder's
    tag is not a name it accepts)."""
    from identity_service import FacePipeline
    from identity_service.training.attributes import fer

    monkeypatch.setattr(fer, "CHUNK", 4)
    items = read_fer(FER_DIR, limit_per_split=5)
    settings = get_settings()
    with FacePipeline(settings=settings, workers=2) as pipeline:
        assert pipeline.embedder.name != pipeline.model
        pooled = fer.fer_features(pipeline, FER_DIR, items, tmp_path / "pooled")
    with FacePipeline(settings=settings, workers=1) as pipeline:
        single = fer.fer_features(pipeline, FER_DIR, items, tmp_path / "single")
    assert pooled.how == single.how and pooled.faces.shape == (10, 48, 48)
    np.testing.assert_allclose(pooled.features, single.features, atol=1e-5)
    np.testing.assert_array_equal(pooled.faces, single.faces)
