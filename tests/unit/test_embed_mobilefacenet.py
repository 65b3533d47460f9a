"""MobileFaceNet-192 and the fused model: input contract, alignment, registry and files."""

from __future__ import annotations

import numpy as np
import pytest

from identity_service import FacePipeline, Settings
from identity_service.align import ARCFACE_TEMPLATE_112, arcface_crop
from identity_service.config import ModelSettings
from identity_service.embed import create_embedder
from identity_service.errors import ChecksumMismatchError, ModelFileMissingError
from identity_service.models import get_model

MFN = "mobilefacenet-192"
FILE = "face_recognition_mobilefacenet_192.onnx"


@pytest.fixture(scope="module")
def mfn():
    return create_embedder(MFN)


def test_registry_pins_the_file_and_states_licence_and_training_data():
    spec = get_model(MFN)
    assert spec.files[0].filename == FILE
    assert spec.files[0].sha256 == (
        "24d261bc16fe981c4fd55b3e53980a6b4985083899d65c4d33fdc31259a48d0b"
    )
    assert "Apache-2.0" in spec.licence
    assert "MS-Celeb-1M" in str(spec.extra["training_data"])
    assert spec.face_input.layout == "nhwc" and spec.face_input.std == 128.0
    assert spec.face_input.mirror and spec.detector == "yunet+dlib-hog"


def test_alignment_fits_the_template_with_all_five_landmarks():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (200, 200, 3), dtype=np.uint8)
    # Landmarks already on the template: the crop is the image's top-left 112x112.
    np.testing.assert_array_equal(arcface_crop(image, ARCFACE_TEMPLATE_112), image[:112, :112])
    base = ARCFACE_TEMPLATE_112 + np.array([30.0, 20.0], np.float32)
    reference = arcface_crop(image, base)
    for point in range(5):  # every landmark moves the least-squares fit
        moved = base.copy()
        moved[point] += [4, -3]
        assert not np.array_equal(arcface_crop(image, moved), reference), point


def test_input_is_nhwc_scaled_by_128_with_the_mirror(mfn):
    crop = np.random.default_rng(1).integers(0, 256, (112, 112, 3), dtype=np.uint8)
    batch = mfn.tensor([crop])
    assert batch.shape == (2, 112, 112, 3) and batch.dtype == np.float32
    np.testing.assert_allclose(batch[0], (crop - 127.5) / 128.0, rtol=1e-6)
    np.testing.assert_allclose(batch[1], (crop[:, ::-1] - 127.5) / 128.0, rtol=1e-6)


def test_embedding_is_the_mean_of_face_and_mirror(mfn, lfw_image):
    pipeline = FacePipeline(embedder=MFN)
    assert pipeline.detector.name == "yunet+dlib-hog"
    face = pipeline.extract_faces(lfw_image("Abdullah_Gul", 1), max_faces=1)[0]
    assert face.detection.detector == "yunet"
    raw = mfn._session.run(None, {"input": mfn.tensor([face.crop])})[0]
    unit = raw / np.linalg.norm(raw, axis=1, keepdims=True)
    expected = unit.sum(0) / np.linalg.norm(unit.sum(0))
    got = mfn.embed_crops([face.crop])[0]
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert got.shape == (192,)


def test_fused_model_is_the_weighted_concatenation(lfw_image):
    fused = FacePipeline(embedder="fused-dlib-mobilefacenet")
    spec = get_model("fused-dlib-mobilefacenet")
    w = float(spec.extra["weight"])
    a, b = (fused.represent(lfw_image("Abdullah_Gul", n))[0].embedding for n in (1, 2))
    assert a.shape == (320,)
    parts = [FacePipeline(fused.detector, name) for name in spec.extra["fuses"]]
    pa, pb = (
        [p.represent(lfw_image("Abdullah_Gul", n))[0].embedding for n in (1, 2)] for p in parts
    )
    expected = w * float(pa[0] @ pa[1]) + (1 - w) * float(pb[0] @ pb[1])
    assert float(a @ b) == pytest.approx(expected, abs=1e-5)


def test_missing_file_names_it_and_says_how_to_supply_it(tmp_path):
    settings = Settings(
        shared_dir=tmp_path / "shared",
        data_dir=tmp_path / "d",
        models=ModelSettings(model_dir=tmp_path / "models"),
    )
    with pytest.raises(ModelFileMissingError) as err:
        create_embedder(MFN, settings)
    assert FILE in err.value.message and "FACEID_MODEL_DIR" in err.value.message
    assert str(tmp_path / "models") in err.value.message


def test_a_file_with_another_sha256_is_refused(tmp_path):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / FILE).write_bytes(b"not the model")
    settings = Settings(
        data_dir=tmp_path / "d", models=ModelSettings(model_dir=tmp_path / "models")
    )
    with pytest.raises(ChecksumMismatchError):
        create_embedder(MFN, settings)


def test_faceid_models_shows_contract_licence_and_training_data():
    import json

    from typer.testing import CliRunner

    from identity_service.cli import app

    result = CliRunner().invoke(app, ["models", "--json"])
    assert result.exit_code == 0, result.output
    (row,) = [r for r in json.loads(result.output) if r.get("model") == f"{MFN}@1"]
    assert "NHWC" in row["input"] and "(x - 127.5) / 128" in row["input"]
    assert "all 5 landmarks" in row["input"] and "mirror" in row["input"]
    assert "Apache-2.0" in row["licence"] and "MS-Celeb-1M" in row["training_data"]
    assert row["sha256"] == get_model(MFN).files[0].sha256 and row["found"]
