"""analyze on a fresh install: the published attribute models, pinned in the registry and
read in place from the model folder's attributes/, with no training step."""

from __future__ import annotations

import os

import pytest
from fastapi.testclient import TestClient

from identity_service import FacePipeline, Settings
from identity_service.api import create_app
from identity_service.api.auth import create_api_key
from identity_service.attributes import describe_heads
from identity_service.attributes.analyze import ATTRIBUTE_EMBEDDER
from identity_service.attributes.heads import attribute_path
from identity_service.config import ApiSettings, ModelSettings, get_settings
from identity_service.errors import ChecksumMismatchError, ModelFileMissingError
from identity_service.models import get_model


def test_a_fresh_data_folder_analyzes_with_no_training(tmp_path, lfw_image):
    settings = Settings(data_dir=tmp_path, workers=1)
    assert not (tmp_path / "cache").exists()
    with FacePipeline(embedder=ATTRIBUTE_EMBEDDER, settings=settings) as pipeline:
        face = pipeline.analyze(lfw_image("Abdullah_Gul", 1))[0]
    assert face.gender is not None and face.gender.value == "male"
    assert face.age is not None and 30 <= face.age.value <= 70
    assert face.emotion is not None and face.race is not None
    published = {i.action: i for i in describe_heads(settings)}
    assert published["gender"].present
    assert published["gender"].path.parent == settings.resolved_model_dir / "attributes"
    assert published["gender"].provenance["seed"] == 20260601


def _model_dir_with(tmp_path, attributes: dict[str, bytes] | None):
    """A model folder with the shared top-level files linked in, and ``attributes``."""
    shared = get_settings().resolved_model_dir
    folder = tmp_path / "models"
    folder.mkdir()
    for path in shared.glob("*.onnx"):
        os.symlink(path, folder / path.name)
    if attributes is not None:
        (folder / "attributes").mkdir()
        for name, data in attributes.items():
            (folder / "attributes" / name).write_bytes(data)
    return folder


def test_a_published_file_with_another_sha256_is_refused(tmp_path):
    folder = _model_dir_with(tmp_path, {"faceid-attr-age.onnx": b"not the published head"})
    settings = Settings(data_dir=tmp_path / "d", models=ModelSettings(model_dir=folder))
    with pytest.raises(ChecksumMismatchError) as err:
        attribute_path("faceid-attr-age.onnx", settings)
    assert err.value.code == "checksum_mismatch"
    assert get_model("faceid-attr-age").files[0].sha256 in err.value.message


def test_missing_published_models_answer_503_without_retry_after(tmp_path, lfw_image):
    folder = _model_dir_with(tmp_path, None)
    settings = Settings(
        data_dir=tmp_path / "d",
        workers=1,
        models=ModelSettings(model_dir=folder),
        api=ApiSettings(auth=True),
    )
    app = create_app(settings)
    with TestClient(app) as http:
        key = create_api_key(app.state.runtime.service.repo, "acme", ["query"])[0]
        with lfw_image("Abel_Pacheco", 1).open("rb") as f:
            response = http.post(
                "/v1/analyze",
                files={"image": ("a.jpg", f, "image/jpeg")},
                headers={"Authorization": f"Bearer {key}"},
            )
    assert response.status_code == 503 and "Retry-After" not in response.headers
    error = response.json()["error"]
    assert error["code"] == "model_file_missing"
    assert "attributes/faceid-attr" in error["message"] and "FACEID_MODEL_DIR" in error["message"]
    with pytest.raises(ModelFileMissingError):
        attribute_path(
            "faceid-attr-age.onnx",
            Settings(data_dir=tmp_path / "d", models=ModelSettings(model_dir=folder)),
        )
