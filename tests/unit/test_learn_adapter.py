"""Adapter export/attach and the folder-of-images dataset (torch; skipped without it)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("pytorch_metric_learning")

from identity_service.embed.adapters import OnnxAdapter, attach_adapter  # noqa: E402
from identity_service.embed.base import Embedder  # noqa: E402
from identity_service.training.metric.adapter import export_adapter  # noqa: E402
from identity_service.training.metric.models import EmbeddingAdapter, FaceCNN  # noqa: E402


class FakeEmbedder(Embedder):
    name, version, dim = "fake", "1", 128

    def crop(self, image, detection):
        return image

    def _forward(self, crops):
        rng = np.random.default_rng(int(sum(c.sum() for c in crops)))
        return rng.normal(size=(len(crops), 128)).astype(np.float32) * 3.0


def trained_like_adapter() -> EmbeddingAdapter:
    torch.manual_seed(0)
    model = EmbeddingAdapter(128, hidden=64)
    torch.nn.init.normal_(model.mlp[-1].weight, std=0.1)  # move it away from the identity
    return model


def test_export_reload_gives_the_same_outputs(tmp_path):
    model = trained_like_adapter()
    path = export_adapter(model, tmp_path / "adapter.onnx")
    x = torch.nn.functional.normalize(torch.randn(37, 128), dim=1)
    with torch.no_grad():
        expected = model.eval()(x).numpy()
    np.testing.assert_allclose(OnnxAdapter(path)(x.numpy()), expected, atol=1e-5)


def test_untrained_adapter_is_the_identity():
    x = torch.nn.functional.normalize(torch.randn(5, 128), dim=1)
    with torch.no_grad():
        torch.testing.assert_close(EmbeddingAdapter()(x), x)


def test_wrapped_embedder_is_normalised_and_tagged(tmp_path):
    path = export_adapter(trained_like_adapter(), tmp_path / "adapter.onnx")
    wrapped = attach_adapter(FakeEmbedder(), path)
    crops = [np.full((4, 4, 3), k, dtype=np.uint8) for k in range(5)]
    out = wrapped.embed_crops(crops, batch_size=2)
    assert out.shape == (5, 128) and out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    sha8 = OnnxAdapter(path).sha8
    assert wrapped.tag == f"fake+adapter-{sha8}@1" and len(sha8) == 8
    assert wrapped.tag != FakeEmbedder().tag
    np.testing.assert_allclose(
        out[:2], wrapped.adapt(FakeEmbedder()._forward(crops[:2])), atol=1e-5
    )


def test_face_folder_dataset_feeds_a_cnn(tmp_path, lfw_dir, pipeline):
    from identity_service.training.metric.crops import FaceFolderDataset
    from identity_service.training.metric.mining import make_loss, make_miner
    from identity_service.training.metric.train import balanced_sampler, fit

    people = [p for p in sorted((lfw_dir / "images").iterdir()) if len(list(p.glob("*.jpg"))) >= 4]
    for person in people[:5]:
        (tmp_path / person.name).mkdir()
        for f in sorted(person.glob("*.jpg"))[:4]:
            (tmp_path / person.name / f.name).symlink_to(f)
    data = FaceFolderDataset(tmp_path, pipeline)
    assert len(data) + len(data.skipped) == 20 and len(data) >= 15
    x, _ = data[0]
    assert x.dtype == torch.float32 and x.ndim == 3 and 0 <= float(x.min()) <= float(x.max()) <= 1
    model = FaceCNN(dim=32, width=8)
    result = fit(
        model,
        make_loss("triplet-semi-hard", 0.2),
        make_miner("triplet-semi-hard", 0.2),
        balanced_sampler(data.labels, 4, 2, length=16),
        data,
        epochs=1,
        batch_size=8,
        progress=False,
    )
    assert np.isfinite(result.history[0].loss)
    with torch.no_grad():
        out = model.eval()(torch.stack([data[i][0] for i in range(3)]))
    torch.testing.assert_close(out.norm(dim=1), torch.ones(3))


def test_dataset_from_a_stored_collection(tmp_path):
    from identity_service.store import NewFace, Repository, make_engine, upgrade
    from identity_service.training.metric.data import from_collection

    url = f"sqlite:///{tmp_path / 'faceid.sqlite3'}"
    upgrade(url)
    engine = make_engine(url)
    repo = Repository(engine)
    coll = repo.create_collection("people", model="fake", model_version="1", dim=8)
    rng = np.random.default_rng(0)
    for person, n in (("bob", 3), ("amy", 2), ("cat", 1)):
        ident = repo.upsert_identity(coll.id, person)
        faces = [
            NewFace(f"{person}{k}".ljust(64, "0"), 0, [0, 0, 1, 1], [], 1.0, None,
                    rng.normal(size=8).astype(np.float32), "fake@1")
            for k in range(n)
        ]  # fmt: skip
        repo.add_faces(coll.id, ident.id, faces)
    repo.delete_identity(coll.id, "cat")
    data = from_collection(repo, coll.id)
    engine.dispose()
    assert data.names == ["amy", "bob"] and sorted(data.labels.tolist()) == [0, 0, 1, 1, 1]
    assert data.features.shape == (5, 8) and data.features.dtype == np.float32
