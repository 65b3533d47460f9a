from __future__ import annotations

from pathlib import Path

import pytest

from identity_service.config import get_settings

# The vector stores a gallery can live in (faiss, milvus): the `vector_store` fixture.
pytest_plugins = ["vector_stores"]


@pytest.fixture(scope="session")
def lfw_dir() -> Path:
    path = get_settings().lfw_dir
    if not (path / "pairs.txt").is_file():
        pytest.fail(
            f"shared LFW data not found at {path}: put shared/ beside the checkout "
            "or set FACEID_SHARED_DIR"
        )
    return path


@pytest.fixture(scope="session")
def lfw_image(lfw_dir: Path):
    def image(name: str, number: int) -> Path:
        return lfw_dir / "images" / name / f"{name}_{number:04d}.jpg"

    return image


@pytest.fixture(scope="session")
def pipeline():
    """dlib's pipeline (HOG + YuNet, dlib ResNet with 8 views): what the dlib, attribute and
    learning tests are about. The default embedder is tested by name where it matters."""
    from identity_service import FacePipeline

    return FacePipeline(embedder="dlib-resnet-v1-tta8")


# -- the HTTP API in-process (tests/unit/test_api.py, test_client_async.py) ----------------------
@pytest.fixture(scope="module")
def api(tmp_path_factory):
    """``(app, TestClient)`` over SQLite in a tmp data_dir, with auth and small limits."""
    from fastapi.testclient import TestClient

    from identity_service.api import create_app
    from identity_service.config import ApiSettings, ModelSettings, Settings

    settings = Settings(
        data_dir=tmp_path_factory.mktemp("api"),
        workers=1,
        models=ModelSettings(embedder="dlib-resnet-v1"),
        api=ApiSettings(auth=True, max_k=20, max_batch=16, max_body_bytes=4 * 1024 * 1024),
    )
    app = create_app(settings)
    with TestClient(app) as http:  # runs the lifespan: models load once, here
        yield app, http


@pytest.fixture(scope="module")
def keys(api):
    from identity_service.api.auth import create_api_key

    app, _ = api
    repo = app.state.runtime.service.repo
    return {
        name: create_api_key(repo, tenant, scopes)[0]
        for name, tenant, scopes in [
            ("a_admin", "acme", ["admin"]),
            ("a_query", "acme", ["query"]),
            ("b_all", "beta", ["query", "enroll"]),
        ]
    }


@pytest.fixture(scope="module")
def people(api, keys, lfw_image):
    """Collection 'staff' of tenant acme: Abel Pacheco and Adam Sandler, two photos each."""
    import numpy as np
    from fastapi.testclient import TestClient
    from PIL import Image

    from identity_service.client import FaceIDClient

    acme = FaceIDClient(
        "http://testserver", api_key=keys["a_admin"], http_client=TestClient(api[0])
    )
    acme.create_collection("staff")
    acme.enroll("staff", "abel", [lfw_image("Abel_Pacheco", 1), lfw_image("Abel_Pacheco", 2)])
    photo = lfw_image("Adam_Sandler", 1)
    array = np.asarray(Image.open(lfw_image("Adam_Sandler", 2)).convert("RGB"))
    result = acme.enroll("staff", "adam", [photo.read_bytes(), array], name="Adam", metadata={})
    assert len(result.face_ids) == 2 and not result.failures
    return "staff"
