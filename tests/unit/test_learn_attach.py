"""An installed adapter attached to a collection: install (CLI), create_embedder by name, enroll,
find and verify on real LFW faces, the sidecar threshold, and the typed errors."""

from __future__ import annotations

import hashlib
import json
import re

import numpy as np
import pytest
from typer.testing import CliRunner

torch = pytest.importorskip("torch")

from identity_service import FaceService, Settings  # noqa: E402
from identity_service.cli import app  # noqa: E402
from identity_service.config import ModelSettings, get_settings  # noqa: E402
from identity_service.embed import create_embedder  # noqa: E402
from identity_service.embed.adapters import AdaptedEmbedder, OnnxAdapter  # noqa: E402
from identity_service.errors import (  # noqa: E402
    ModelFileMissingError,
    ModelMismatchError,
    UnknownModelError,
)
from identity_service.models import default_threshold  # noqa: E402
from identity_service.training.metric.adapter import export_adapter  # noqa: E402

BASE = "dlib-resnet-v1-tta8"
THRESHOLD = 0.06  # mated probes here are at <= 0.03, the others at >= 0.08
PEOPLE = {
    "Abdullah_Gul": [1, 2, 3, 4],
    "Adam_Sandler": [1, 2, 3],
    "Abel_Pacheco": [1, 2, 3],
}


def projection(in_dim: int, out_dim: int) -> torch.nn.Linear:
    """A fixed orthonormal projection: keeps most of the identity structure of the input."""
    gen = torch.Generator().manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(in_dim, out_dim, generator=gen))
    linear = torch.nn.Linear(in_dim, out_dim, bias=False)
    with torch.no_grad():
        linear.weight.copy_(q.T)
    return linear


def make_run(folder, in_dim: int = 128, out_dim: int = 64):
    """A folder shaped like the output of ``faceid learn train``."""
    onnx = export_adapter(projection(in_dim, out_dim), folder / "adapter.onnx", in_dim=in_dim)
    report = {"base": BASE, "data": "test projection", "seed": 7, "threshold": THRESHOLD}
    (folder / "report.json").write_text(json.dumps({**report, "recipe": "none"}))
    return onnx


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """FACEID_ADAPTER_DIR for the CLI, and Settings for the service, on one temp folder."""
    root = tmp_path_factory.mktemp("attach")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FACEID_ADAPTER_DIR", str(root / "adapters"))
        mp.setenv("FACEID_EMBEDDER", BASE)  # adapters here are trained on dlib's embeddings
        get_settings.cache_clear()
        yield Settings(
            data_dir=root / "data",
            workers=1,
            models=ModelSettings(adapter_dir=root / "adapters", embedder=BASE),
        )
    get_settings.cache_clear()


def install(*args: str):
    result = CliRunner().invoke(app, ["learn", "install", *args, "--json"])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


@pytest.fixture(scope="module")
def installed(env, tmp_path_factory):
    run = tmp_path_factory.mktemp("run")
    onnx = make_run(run)
    return install(str(run)), onnx


@pytest.fixture(scope="module")
def service(env, installed, lfw_image):
    svc = FaceService.embedded(env)
    svc.create_collection("adapted", model=installed[0]["model"])
    for person, numbers in PEOPLE.items():
        svc.enroll("adapted", person, [lfw_image(person, n) for n in numbers[:-1]])
    yield svc
    svc.close()


def test_install_copies_the_file_and_writes_the_sidecar(env, installed):
    info, onnx = installed
    sha256 = hashlib.sha256(onnx.read_bytes()).hexdigest()
    assert info["model"] == f"{BASE}+adapter-{sha256[:8]}"
    root = env.resolved_adapter_dir
    assert (root / f"{sha256[:8]}.onnx").read_bytes() == onnx.read_bytes()
    sidecar = json.loads((root / f"{sha256[:8]}.json").read_text())
    assert sidecar["sha256"] == sha256 and sidecar["base"] == BASE
    assert (sidecar["in_dim"], sidecar["out_dim"]) == (128, 64)
    assert sidecar["threshold"] == THRESHOLD and "report.json" in sidecar["threshold_source"]
    assert sidecar["report"].endswith("report.json") and sidecar["source"] == str(onnx.resolve())
    assert (sidecar["training_data"], sidecar["seed"], sidecar["recipe"]) == (
        "test projection",
        7,
        "none",
    )
    again = CliRunner().invoke(app, ["learn", "install", str(onnx.parent)])
    assert again.exit_code == 0, again.output
    assert "already installed" in again.output and f"model: {info['model']}" in again.output
    assert sorted(p.name for p in root.iterdir()) == [f"{sha256[:8]}.json", f"{sha256[:8]}.onnx"]


def test_create_embedder_builds_the_adapted_model(env, installed):
    embedder = create_embedder(installed[0]["model"], env)
    assert isinstance(embedder, AdaptedEmbedder)
    assert embedder.base.name == BASE and embedder.dim == 64
    assert embedder.tag == f"{installed[0]['model']}@1"


def test_find_uses_the_adapter(service, installed, lfw_image):
    tag = f"{installed[0]['model']}@1"
    coll = service.collection("adapted")
    assert (coll.model, coll.dim) == (installed[0]["model"], 64)
    for person, numbers in PEOPLE.items():
        matches = service.find("adapted", lfw_image(person, numbers[-1]), k=3)
        assert matches[0].external_id == person and matches[0].accepted
        assert matches[0].threshold == THRESHOLD and not any(m.accepted for m in matches[1:])
        assert service.repo.faces_by_ids([matches[0].face_id])[matches[0].face_id].model == tag
    stranger = service.find("adapted", lfw_image("Aaron_Peirsol", 1), k=1)
    assert stranger and not stranger[0].accepted
    _, vectors, _ = service.repo.all_embeddings(coll.id)
    assert vectors.shape == (7, 64)  # every gallery photo, adapted to 64-d


def test_verify_reports_the_sidecar_threshold(service, installed, lfw_image):
    model = installed[0]["model"]
    a, b = lfw_image("Adam_Sandler", 1), lfw_image("Adam_Sandler", 3)
    result = service.pipeline(model).verify(a, b)
    assert result.threshold == THRESHOLD and result.verified
    assert result.threshold_source.startswith("installed adapter sidecar")
    assert result.model == f"{model}@1"
    # The distance is the adapted one: base embeddings through the exported projection.
    base = service.pipeline(BASE)
    raw = np.stack([base.represent(img)[0].embedding for img in (a, b)])
    adapted = OnnxAdapter(installed[1])(raw)
    adapted /= np.linalg.norm(adapted, axis=1, keepdims=True)
    assert result.distance == pytest.approx(1 - float(adapted[0] @ adapted[1]), abs=1e-5)
    in_force = service.threshold_in_force(service.collection("adapted"))
    assert (in_force.threshold, in_force.source) == (THRESHOLD, result.threshold_source)


def test_faceid_models_lists_the_adapter(env, installed):
    result = CliRunner().invoke(app, ["models", "--json"])
    assert result.exit_code == 0, result.output
    row = next(r for r in json.loads(result.output) if r["model"] == installed[0]["model"])
    assert (row["kind"], row["base"], row["dim"], row["threshold"]) == (
        "adapter",
        BASE,
        64,
        THRESHOLD,
    )
    assert row["sha256"] == installed[0]["sha256"] and row["found"].endswith(".onnx")


def test_unknown_adapter_sha_is_a_typed_error(env, installed):
    with pytest.raises(UnknownModelError) as err:
        create_embedder(f"{BASE}+adapter-deadbeef", env)
    assert str(env.resolved_adapter_dir) in err.value.message
    assert "faceid learn install" in err.value.message
    with pytest.raises(UnknownModelError, match="8 hex digits"):
        create_embedder(f"{BASE}+adapter-xyz", env)


def test_adapter_for_another_base_is_refused(env, installed):
    other = installed[0]["model"].replace(BASE, "dlib-resnet-v1")
    hint = re.escape(f"use the model name {installed[0]['model']}")
    with pytest.raises(ModelMismatchError, match=hint):
        create_embedder(other, env)


def test_dimension_mismatch_and_bad_files_are_typed_errors(env, installed, tmp_path):
    small = export_adapter(projection(64, 32), tmp_path / "small.onnx", in_dim=64)
    with pytest.raises(ModelMismatchError, match=r"takes 64-d embeddings but .* gives 128-d"):
        install(str(small))
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not an onnx graph")
    with pytest.raises(UnknownModelError, match="is not an ONNX adapter"):
        install(str(junk))
    with pytest.raises(ModelFileMissingError, match=r"adapter\.onnx not found"):
        install(str(tmp_path))
    for refused in (small, junk):
        sha8 = hashlib.sha256(refused.read_bytes()).hexdigest()[:8]
        assert not list(env.resolved_adapter_dir.glob(f"{sha8}.*"))


def test_bare_onnx_with_a_given_threshold(env, installed, tmp_path):
    onnx = export_adapter(projection(128, 16), tmp_path / "bare.onnx", in_dim=128)
    info = install(str(onnx), "--threshold", "0.3")
    assert info["threshold"] == 0.3 and info["report"] is None and info["base"] == BASE
    again = install(str(onnx))  # no threshold this time: the installed one stays
    assert (again["threshold"], again["installed_at"]) == (0.3, info["installed_at"])
    found = default_threshold(info["model"], env)
    assert (
        found is not None
        and found.value == 0.3
        and "given to faceid learn install" in (found.source)
    )


def test_registry_defaults_are_unchanged():
    found = default_threshold(BASE)
    assert found is not None and (found.value, found.source) == (
        0.0809,
        "LFW folds 1-7, best-accuracy threshold (faceid eval lfw)",
    )
    assert default_threshold("dlib-resnet-v1-tta4") is None
    assert default_threshold("dlib-resnet-v1+adapter-00000000") is None


def test_migrate_model_moves_a_collection_onto_the_adapter(service, installed, tmp_path, lfw_image):
    from identity_service.jobs import get_job, submit_migrate_model

    model = installed[0]["model"]
    for person, numbers in PEOPLE.items():
        (tmp_path / person).mkdir()
        for n in numbers[:-1]:
            (tmp_path / person / f"{n}.jpg").symlink_to(lfw_image(person, n))
    service.create_collection("staff", model=BASE)
    for person in PEOPLE:
        service.enroll("staff", person, sorted((tmp_path / person).iterdir()))
    job = get_job(service, submit_migrate_model(service, "staff", model, tmp_path))
    assert job.status == "succeeded", job.errors
    moved = service.collection("staff")
    assert (moved.model, moved.dim, service.repo.counts(moved.id).faces) == (model, 64, 7)
    match = service.find("staff", lfw_image("Adam_Sandler", 3), k=1)[0]
    assert match.external_id == "Adam_Sandler" and match.threshold == THRESHOLD
