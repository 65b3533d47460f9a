"""End-to-end FaceCNN training on aligned LFW crops: fit lowers the loss, the device check, the
CLI run and its report, the ONNX export (torch; skipped without it)."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("pytorch_metric_learning")

from typer.testing import CliRunner  # noqa: E402

from identity_service.cli import app  # noqa: E402
from identity_service.training.metric.cnn import export_cnn  # noqa: E402
from identity_service.training.metric.crops import CropSet, FlipJitter, extract_crops  # noqa: E402
from identity_service.training.metric.device import DeviceUnavailableError, resolve_device  # noqa: E402
from identity_service.training.metric.mining import make_loss, make_miner  # noqa: E402
from identity_service.training.metric.models import FaceCNN  # noqa: E402
from identity_service.training.metric.train import balanced_sampler, fit  # noqa: E402


@pytest.fixture(scope="module")
def crops(lfw_dir, pipeline) -> CropSet:
    """dlib chips of the first 12 LFW people with at least 4 photos, 4 photos each (~2 s)."""
    data, _ = extract_crops(
        lfw_dir / "images", pipeline, max_identities=12, max_per_identity=4, min_images=4
    )
    assert data.n_classes == 12 and len(data) >= 44, "nearly every photo must give a face"
    assert data.crop_shape == (3, 150, 150) and data.features.dtype == np.uint8
    return data


@pytest.fixture(autouse=True)
def one_thread():
    """Small convolutions run faster on one thread, and the sums keep one order."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_a_few_steps_on_real_crops_lower_the_loss(crops):
    from pytorch_metric_learning import losses, reducers
    from pytorch_metric_learning.distances import LpDistance

    torch.manual_seed(0)
    np.random.seed(0)
    model = FaceCNN(dim=32, width=8)
    # Scored by the mean hinge over every triplet of the fixed batch: the training loss
    # averages over the violating triplets only, which can rise while fewer violate.
    score = losses.TripletMarginLoss(
        0.2, distance=LpDistance(normalize_embeddings=True), reducer=reducers.MeanReducer()
    )
    x, y = torch.from_numpy(crops.features).float() / 255.0, torch.from_numpy(crops.labels)

    def batch_loss() -> float:
        with torch.no_grad():
            return float(score(model.eval()(x), y))

    before = batch_loss()
    result = fit(
        model,
        make_loss("triplet-all", 0.2),
        make_miner("triplet-all", 0.2),
        balanced_sampler(crops.labels, 4, 4, length=48),
        crops,
        epochs=3,
        batch_size=16,
        lr=3e-3,
        progress=False,
        transform=FlipJitter(),
    )
    after = batch_loss()
    assert len(result.history) == 3 and all(np.isfinite(h.loss) for h in result.history)
    assert after < 0.85 * before, (before, after)


def test_flip_jitter_flips_or_keeps_each_sample_and_stays_in_range():
    torch.manual_seed(0)
    x = torch.rand(16, 3, 20, 20)
    out = FlipJitter(shift=0.0, zoom=0.0)(x)
    for a, b in zip(x, out, strict=True):
        same, mirrored = torch.allclose(a, b, atol=1e-5), torch.allclose(a.flip(-1), b, atol=1e-5)
        assert same != mirrored
    jittered = FlipJitter(flip=False)((x * 255).to(torch.uint8))
    assert jittered.dtype == torch.float32 and 0.0 <= float(jittered.min()) <= 1.0
    assert float(jittered.max()) <= 1.0 and not torch.allclose(jittered, x, atol=0.05)


def test_onnx_export_reloads_with_the_same_outputs(tmp_path, crops):
    import onnxruntime as ort

    torch.manual_seed(0)
    model = FaceCNN(dim=32, width=4)
    x = torch.from_numpy(crops.features[:7]).float() / 255.0
    with torch.no_grad():
        model.train()(x)  # move the BatchNorm running statistics off their defaults
        expected = model.eval()(x).numpy()
    path = export_cnn(model, tmp_path / "cnn.onnx", crops.crop_shape)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (inp,) = session.get_inputs()
    assert inp.name == "crops" and inp.shape[1:] == [3, 150, 150]
    out = session.run(None, {"crops": x.numpy()})[0]  # batch 7, exported with 2
    assert out.shape == (7, 32)
    np.testing.assert_allclose(out, expected, atol=1e-5)


def test_cuda_without_cuda_is_a_typed_error_from_the_cli(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(DeviceUnavailableError):
        resolve_device("cuda")
    out = tmp_path / "run"
    args = ["learn", "train", "--arch", "cnn", "--device", "cuda", "--images", str(tmp_path)]
    result = CliRunner().invoke(app, [*args, "-o", str(out)])
    text = " ".join(result.output.split())  # rich wraps long lines
    assert result.exit_code == 1, text
    assert text.startswith("error [device_unavailable] --device cuda asked for"), text
    assert "torch.cuda is not available" in text and "Traceback" not in text
    assert isinstance(result.exception, SystemExit)
    assert not out.exists()


def test_cli_trains_exports_and_reports(tmp_path, lfw_dir):
    images = tmp_path / "images"
    people = [d for d in sorted((lfw_dir / "images").iterdir()) if len(list(d.glob("*.jpg"))) >= 3]
    for person in people[:8]:
        (images / person.name).mkdir(parents=True)
        for f in sorted(person.glob("*.jpg"))[:3]:
            (images / person.name / f.name).symlink_to(f)
    out = tmp_path / "run"

    def train(epochs: int, *extra: str):
        args = ["learn", "train", "--arch", "cnn", "--images", str(images), "-o", str(out),
                "--epochs", str(epochs), "--width", "4", "--dim", "16", "--classes", "2",
                "--samples", "3", "--no-baseline", "--json", *extra]  # fmt: skip
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
        return json.loads((out / "report.json").read_text())

    report = train(1)
    assert report["arch"] == "cnn" and report["split"]["test_identities"] == 4
    assert report["crops"]["shape"] == [3, 150, 150] and report["frozen"] is None
    scores = report["cnn"]
    assert {"map_at_r", "precision_at_1", "verification_accuracy", "tar_at_far"} <= set(scores)
    assert (out / "cnn.onnx").is_file() and (out / "crops.npz").is_file()
    assert torch.load(out / "checkpoint.pt", weights_only=False)["epoch"] == 1
    history = train(2, "--resume")["history"]
    assert [h["epoch"] for h in history] == [1, 2] and history[0] == report["history"][0]
