"""Attribute heads stored as ONNX and run by onnxruntime, on CPU and GPU."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from identity_service.attributes import (
    HEAD_FILES,
    Head,
    MlpWeights,
    describe_heads,
    heads_dir,
    load_head,
)
from identity_service.attributes.labels import RACES
from identity_service.config import ModelSettings, Settings
from identity_service.errors import ModelError, ModelFileMissingError

META = {
    "embedder": "dlib-resnet-v1-tta8@1",
    "seed": 7,
    "licence": "weights trained on UTKFace (non-commercial research only)",
    "data": {"utkface": {"images": 3, "split": "80/20 by file"}},
    "heldout_metrics": {"utkface": {"accuracy": 0.5, "n": 2}},
}


def _weights(dim: int = 128, hidden: int = 32, k: int = len(RACES), seed: int = 0) -> MlpWeights:
    rng = np.random.default_rng(seed)
    return MlpWeights(
        rng.normal(0, 0.3, (dim, hidden)),
        rng.normal(0, 0.3, hidden),
        rng.normal(0, 0.3, (hidden, k)),
        rng.normal(0, 0.3, k),
    )


def _reference(w: MlpWeights, x: np.ndarray) -> np.ndarray:
    """The head's formula in float64 numpy: softmax(relu(x w1 + b1) w2 + b2)."""
    h = np.maximum(x.astype(np.float64) @ w.w1 + w.b1, 0.0)
    z = h @ w.w2 + w.b2
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _embeddings(n: int = 50, dim: int = 128, seed: int = 1) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _settings(tmp_path, **models) -> Settings:
    return Settings(data_dir=tmp_path, models=ModelSettings(attribute_models="trained", **models))


def _save_race_head(settings: Settings, w: MlpWeights | None = None) -> Head:
    head = Head.from_weights("race", RACES, w or _weights(), dict(META))
    head.save(heads_dir(settings) / HEAD_FILES["race"])
    return head


def test_saved_onnx_head_gives_the_reference_probabilities(tmp_path):
    settings = _settings(tmp_path)
    w = _weights()
    _save_race_head(settings, w)
    x = _embeddings()
    p = load_head("race", settings).probabilities(x)
    assert p.shape == (len(x), len(RACES))
    np.testing.assert_allclose(p, _reference(w, x), atol=1e-5)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-5)
    # a single embedding is one row
    np.testing.assert_allclose(load_head("race", settings).probabilities(x[0]), p[:1], atol=1e-6)


def test_onnx_file_is_the_documented_graph(tmp_path):
    import onnx

    settings = _settings(tmp_path)
    _save_race_head(settings)
    path = heads_dir(settings) / "faceid-attr-race.onnx"
    model = onnx.load(path)
    onnx.checker.check_model(model)
    assert [n.op_type for n in model.graph.node] == ["Gemm", "Relu", "Gemm", "Softmax"]
    (inp,) = model.graph.input
    (out,) = model.graph.output
    assert (inp.name, out.name) == ("embeddings", "probabilities")
    assert inp.type.tensor_type.shape.dim[1].dim_value == 128
    assert out.type.tensor_type.shape.dim[1].dim_value == len(RACES)
    props = {p.key: json.loads(p.value) for p in model.metadata_props}
    assert props["name"] == "race" and props["classes"] == list(RACES)
    assert props["embedder"] == META["embedder"] and props["licence"] == META["licence"]


def test_metadata_round_trips_and_meta_changes_are_saved(tmp_path):
    settings = _settings(tmp_path)
    head = _save_race_head(settings)
    loaded = load_head("race", settings)
    assert (loaded.name, loaded.classes, loaded.meta) == ("race", RACES, META)
    head.meta["heldout_metrics"] = {"utkface": {"accuracy": 0.9, "n": 10}}
    head.save(heads_dir(settings) / HEAD_FILES["race"])
    assert load_head("race", settings).meta["heldout_metrics"]["utkface"]["accuracy"] == 0.9


def test_loading_needs_onnxruntime_only(tmp_path, monkeypatch):
    settings = _settings(tmp_path)
    w = _weights()
    _save_race_head(settings, w)
    monkeypatch.setitem(sys.modules, "onnx", None)  # `import onnx` now fails
    x = _embeddings(5)
    np.testing.assert_allclose(
        load_head("race", settings).probabilities(x), _reference(w, x), atol=1e-5
    )


def _save_legacy_npz(path, w: MlpWeights, classes, meta) -> None:
    """A head as the numpy-era ``Head.save`` wrote it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        path,
        w1=w.w1,
        b1=w.b1,
        w2=w.w2,
        b2=w.b2,
        classes=np.array(classes),
        meta=np.array(json.dumps({"name": "race", **meta})),
    )


def test_old_npz_head_is_converted_once_on_load(tmp_path):
    settings = _settings(tmp_path)
    w = _weights(seed=3)
    legacy = heads_dir(settings) / "faceid-attr-race.npz"
    _save_legacy_npz(legacy, w, RACES, META)
    onnx_path = heads_dir(settings) / HEAD_FILES["race"]
    assert not onnx_path.exists()

    head = load_head("race", settings)
    assert onnx_path.is_file() and legacy.is_file()
    x = _embeddings()
    np.testing.assert_allclose(head.probabilities(x), _reference(w, x), atol=1e-5)
    assert head.classes == RACES
    assert head.meta == {**META, "converted_from": "faceid-attr-race.npz"}

    stamp = onnx_path.stat().st_mtime_ns
    load_head("race", settings)
    assert onnx_path.stat().st_mtime_ns == stamp  # not converted again


def test_corrupt_npz_head_is_a_typed_error(tmp_path):
    settings = _settings(tmp_path)
    legacy = heads_dir(settings) / "faceid-attr-age.npz"
    legacy.parent.mkdir(parents=True)
    legacy.write_bytes(b"not a zip")
    with pytest.raises(ModelError, match="faceid train-attributes"):
        load_head("age", settings)


def test_missing_head_names_train_attributes(tmp_path):
    with pytest.raises(ModelFileMissingError, match="faceid train-attributes") as err:
        load_head("gender", _settings(tmp_path))
    assert "faceid-attr-gender.onnx" in str(err.value)


def test_a_file_that_is_not_a_head_is_a_typed_error(tmp_path):
    settings = _settings(tmp_path)
    path = heads_dir(settings) / HEAD_FILES["age"]
    path.parent.mkdir(parents=True)
    path.write_bytes(b"garbage")
    with pytest.raises(ModelError, match="cannot load"):
        load_head("age", settings)


def _only_cpu(monkeypatch) -> None:
    import onnxruntime as ort

    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CPUExecutionProvider"])


def test_cuda_without_a_gpu_provider_is_a_typed_error(tmp_path, monkeypatch):
    settings = _settings(tmp_path)
    _save_race_head(settings)
    _only_cpu(monkeypatch)
    with pytest.raises(ModelError, match="onnxruntime has no CUDA provider") as err:
        load_head("race", _settings(tmp_path, device="cuda"))
    assert not isinstance(err.value, ModelFileMissingError)
    # the CPU default still loads
    assert load_head("race", settings).probabilities(_embeddings(2)).shape == (2, len(RACES))


def test_cuda_provider_that_cannot_start_is_a_typed_error(tmp_path, monkeypatch):
    """onnxruntime falls back to CPU silently when CUDA is listed but fails to start."""
    import onnxruntime as ort

    real = ort.InferenceSession

    class CpuOnlySession(real):
        def __init__(self, model, sess_options=None, providers=None, **kw):
            super().__init__(model, sess_options=sess_options, providers=["CPUExecutionProvider"])

    settings = _settings(tmp_path)
    _save_race_head(settings)
    monkeypatch.setattr(
        ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"]
    )
    monkeypatch.setattr(ort, "InferenceSession", CpuOnlySession)
    with pytest.raises(ModelError, match="could not start its CUDA provider"):
        load_head("race", _settings(tmp_path, device="cuda:0"))


def test_emotion_model_uses_the_same_provider_choice(monkeypatch):
    from identity_service.attributes.emotion import EmotionModel

    _only_cpu(monkeypatch)
    with pytest.raises(ModelError, match="onnxruntime has no CUDA provider"):
        EmotionModel(Settings(models=ModelSettings(device="cuda")))


def test_describe_heads_shows_file_provenance_and_metrics(tmp_path):
    settings = _settings(tmp_path)
    _save_race_head(settings)
    _save_legacy_npz(heads_dir(settings) / "faceid-attr-age.npz", _weights(k=3), RACES[:3], {})
    info = {i.action: i for i in describe_heads(settings)}
    assert set(info) == set(HEAD_FILES)

    race = info["race"]
    assert race.present and race.path == heads_dir(settings) / "faceid-attr-race.onnx"
    assert race.embedder == META["embedder"] and race.classes == RACES
    assert race.metrics == META["heldout_metrics"]
    assert race.provenance["licence"] == META["licence"] and race.provenance["seed"] == 7
    assert "heldout_metrics" not in race.provenance
    json.dumps(race.to_dict())

    assert not info["gender"].present and info["gender"].legacy_path is None
    age = info["age"]
    assert not age.present and age.legacy_path == heads_dir(settings) / "faceid-attr-age.npz"
    assert not (heads_dir(settings) / HEAD_FILES["age"]).exists()  # describing converts nothing
