"""POST /v1/analyze through the typed client, before and after attribute heads exist."""

from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient

from identity_service.api import create_app
from identity_service.api.auth import create_api_key
from identity_service.attributes.analyze import ATTRIBUTE_EMBEDDER, models_for
from identity_service.attributes.heads import AGE_BINS
from identity_service.attributes.labels import GENDERS, RACES
from identity_service.client import Analysis, FaceIDClient, ValidationError
from identity_service.config import ApiSettings, ModelSettings, Settings
from identity_service.errors import ModelFileMissingError
from identity_service.training.attributes.fit import train_head


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("api"),
        workers=1,
        api=ApiSettings(auth=True),
        models=ModelSettings(attribute_models="trained"),  # the cache's own set: none until trained
    )
    app = create_app(settings)
    with TestClient(app) as http:
        repo = app.state.runtime.service.repo
        key = create_api_key(repo, "acme", ["query"])[0]
        yield app, FaceIDClient("http://testserver", api_key=key, http_client=http)


def test_analyze_without_heads_says_how_to_train_them(api, lfw_image):
    _, client = api
    with pytest.raises(ModelFileMissingError, match="train-attributes"):
        client.analyze(lfw_image("Abel_Pacheco", 1), actions=("gender",))


def test_analyze_returns_every_attribute(api, lfw_image):
    app, client = api
    pipeline = app.state.runtime.service.pipeline(ATTRIBUTE_EMBEDDER)  # what analyze reads
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 128)).astype(np.float32)
    models = models_for(pipeline)
    for action, classes in (
        ("age", tuple(map(str, range(AGE_BINS)))),
        ("gender", GENDERS),
        ("race", RACES),
    ):
        head = train_head(
            x, rng.integers(0, len(classes), len(x)), classes, action, seed=0, hidden=8, epochs=2
        )
        head.meta["embedder"] = pipeline.model
        models.heads[action] = head
    faces = client.analyze(lfw_image("Abel_Pacheco", 1))
    assert len(faces) == 1 and isinstance(faces[0], Analysis)
    face = faces[0]
    assert face.face_source == "detected" and len(face.box) == 4
    for attr in (face.gender, face.emotion, face.race):
        assert attr is not None and abs(sum(attr["scores"].values()) - 1.0) < 1e-3
    assert face.age is not None and 0 <= face.age["value"] <= 100
    only = client.analyze(lfw_image("Abel_Pacheco", 1), actions=("emotion",))[0]
    assert only.emotion is not None and only.gender is None
    with pytest.raises(ValidationError, match="actions"):
        client.analyze(lfw_image("Abel_Pacheco", 1), actions=("mood",))
