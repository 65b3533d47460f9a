from __future__ import annotations

import numpy as np
import pytest

from identity_service.attributes import Head, load_head, train_head
from identity_service.attributes.data import GENDERS, is_test, read_utkface
from identity_service.attributes.heads import AGE_BINS, age_from_probabilities
from identity_service.config import Settings
from identity_service.errors import FaceIDError, ModelFileMissingError, ModelMismatchError


def _blobs(n: int = 300, k: int = 2, dim: int = 128, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, dim))
    y = rng.integers(0, k, n)
    x = centres[y] + 0.5 * rng.normal(size=(n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), y


def test_classifier_head_trains_predicts_and_round_trips(tmp_path):
    x, y = _blobs()
    head = train_head(x, y, GENDERS, "gender", seed=1, hidden=32, epochs=60)
    p = head.probabilities(x)
    assert p.shape == (len(x), 2)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-5)
    assert (p.argmax(1) == y).mean() > 0.95
    loaded = Head.load(head.save(tmp_path / "h.onnx"))
    assert loaded.classes == GENDERS and loaded.meta["seed"] == 1
    np.testing.assert_allclose(loaded.probabilities(x), p, atol=1e-6)
    again = train_head(x, y, GENDERS, "gender", seed=1, hidden=32, epochs=60)
    np.testing.assert_allclose(again.probabilities(x), p, atol=1e-5)  # fixed seed: same head


def test_age_head_learns_a_linear_age():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 16)).astype(np.float32)
    age = np.clip(np.round(40 + 12 * x[:, 0]), 0, 100).astype(int)
    head = train_head(
        x,
        age,
        tuple(map(str, range(AGE_BINS))),
        "age",
        seed=0,
        hidden=32,
        epochs=300,
        lr=1e-2,
        age_sigma=2.5,
    )
    pred = age_from_probabilities(head.probabilities(x))
    assert np.abs(pred - age).mean() < 6.0


def test_split_is_fixed_and_about_a_fifth():
    keys = [f"f{i}.jpg" for i in range(2000)]
    sides = [is_test(k) for k in keys]
    assert sides == [is_test(k) for k in keys]
    assert 0.17 < np.mean(sides) < 0.23


def test_utkface_names_parse(tmp_path):
    for name in ("25_1_2_2017.jpg.chip.jpg", "3_0_2017.jpg.chip.jpg", "x_1_0_1.jpg"):
        (tmp_path / name).write_bytes(b"")
    items = {i.relpath: i for i in read_utkface(tmp_path)}
    assert set(items) == {"25_1_2_2017.jpg.chip.jpg", "3_0_2017.jpg.chip.jpg"}
    assert (items["25_1_2_2017.jpg.chip.jpg"].age, items["25_1_2_2017.jpg.chip.jpg"].race) == (
        25,
        2,
    )
    assert items["3_0_2017.jpg.chip.jpg"].race == -1


def test_untrained_head_is_a_typed_error(tmp_path):
    settings = Settings(data_dir=tmp_path)
    with pytest.raises(ModelFileMissingError, match="faceid train-attributes"):
        load_head("age", settings)


def test_head_for_another_embedder_and_bad_action_are_typed_errors(tmp_path):
    from types import SimpleNamespace

    from identity_service.attributes.analyze import AttributeModels, _check_actions

    x, y = _blobs(n=40)
    head = train_head(x, y, GENDERS, "gender", seed=0, hidden=8, epochs=5)
    head.meta["embedder"] = "other@1"
    settings = Settings(data_dir=tmp_path)
    head.save(settings.cache_dir / "models" / "faceid-attr-gender.onnx")
    models = AttributeModels(SimpleNamespace(settings=settings, model="dlib-resnet-v1-tta8@1"))
    with pytest.raises(ModelMismatchError):
        models.head("gender")
    with pytest.raises(FaceIDError, match="unknown action"):
        _check_actions(("age", "mood"))
