from __future__ import annotations

import numpy as np
import pytest

from identity_service.attributes import Head, load_head
from identity_service.attributes.heads import AGE_BINS, age_from_probabilities
from identity_service.attributes.labels import GENDERS
from identity_service.config import ModelSettings, Settings
from identity_service.errors import FaceIDError, ModelFileMissingError, ModelMismatchError
from identity_service.training.attributes.data import is_test, read_utkface
from identity_service.training.attributes.fit import train_head


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
    settings = Settings(data_dir=tmp_path, models=ModelSettings(attribute_models="trained"))
    with pytest.raises(ModelFileMissingError, match="faceid train-attributes"):
        load_head("age", settings)


def test_head_for_another_embedder_and_bad_action_are_typed_errors(tmp_path):
    from types import SimpleNamespace

    from identity_service.attributes.analyze import AttributeModels, _check_actions

    x, y = _blobs(n=40)
    head = train_head(x, y, GENDERS, "gender", seed=0, hidden=8, epochs=5)
    head.meta["embedder"] = "other@1"
    settings = Settings(data_dir=tmp_path, models=ModelSettings(attribute_models="trained"))
    head.save(settings.cache_dir / "models" / "faceid-attr-gender.onnx")
    models = AttributeModels(SimpleNamespace(settings=settings, model="dlib-resnet-v1-tta8@1"))
    with pytest.raises(ModelMismatchError):
        models.head("gender")
    with pytest.raises(FaceIDError, match="unknown action"):
        _check_actions(("age", "mood"))


def test_validation_split_is_cut_from_the_training_side_only():
    from identity_service.training.attributes.data import SEED
    from identity_service.training.attributes.train import AttributeData, validation_data

    utk = [f"{i % 90}_{i % 2}_{i % 5}_2017{i:05d}.jpg.chip.jpg" for i in range(400)]
    lfw = [f"Person_{i // 3}/Person_{i // 3}_{i % 3 + 1:04d}.jpg" for i in range(300)]
    data = AttributeData(
        utk_x=np.arange(400, dtype=np.float32)[:, None],
        utk_age=np.arange(400) % 90,
        utk_gender=np.arange(400) % 2,
        utk_race=np.arange(400) % 5,
        utk_test=np.array([is_test(f) for f in utk]),
        utk_how=["detected"] * 400,
        lfw_x=np.arange(300, dtype=np.float32)[:, None],
        lfw_gender=np.arange(300) % 2,
        lfw_test=np.array([is_test(f.split("/")[0]) for f in lfw]),
        lfw_people=100,
        embedder="e",
        seed=SEED,
        utk_files=utk,
        lfw_files=lfw,
    )
    val = validation_data(data)
    assert val.seed == SEED + 1
    assert len(val.utk_files) == int((~data.utk_test).sum()) == len(val.utk_x)
    assert set(val.utk_x[:, 0].astype(int)) == set(np.flatnonzero(~data.utk_test))
    assert not set(val.lfw_files) & {f for f, t in zip(lfw, data.lfw_test, strict=True) if t}
    for side, files in ((val.utk_test, val.utk_files), (val.lfw_test, val.lfw_files)):
        assert 0.1 < side.mean() < 0.3 and len(side) == len(files)
    # people stay whole on one side of the validation split
    people = {}
    for f, t in zip(val.lfw_files, val.lfw_test, strict=True):
        people.setdefault(f.split("/")[0], set()).add(bool(t))
    assert all(len(sides) == 1 for sides in people.values())
