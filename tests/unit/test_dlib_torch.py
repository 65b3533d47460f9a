"""dlib's face ResNet as a torch module: the same network as dlib's own, cut and written back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from identity_service.embed.dlib_convert import INPUT_NAME, build_onnx
from identity_service.embed.dlib_format import parse_dlib_resnet
from identity_service.models import get_model, resolve_file
from identity_service.training.attributes.dlib_torch import DlibTorchNet


@pytest.fixture(scope="module")
def dat_path() -> Path:
    files = {f.filename: f for f in get_model("dlib-resnet-v1").files}
    return resolve_file(files["dlib_face_recognition_resnet_model_v1.dat"])


@pytest.fixture(scope="module")
def net(dat_path):
    return parse_dlib_resnet(dat_path.read_bytes(), str(dat_path))


@pytest.fixture(scope="module")
def chips() -> np.ndarray:
    rng = np.random.default_rng(7)
    smooth = rng.integers(0, 256, (3, 15, 15, 3)).repeat(10, axis=1).repeat(10, axis=2)
    return np.clip(smooth + rng.integers(-20, 21, smooth.shape), 0, 255).astype(np.uint8)


def _onnx(net, chips: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(build_onnx(net).SerializeToString())
    x = chips.transpose(0, 3, 1, 2).astype(np.float32)
    return session.run(None, {INPUT_NAME: x})[0]


def test_torch_module_equals_dlib(dat_path, net, chips):
    import dlib

    reference = dlib.face_recognition_model_v1(str(dat_path))
    expected = np.array([np.array(v) for v in reference.compute_face_descriptor(list(chips))])
    model = DlibTorchNet(net).eval()
    with torch.no_grad():
        got = model.run(model.prepare(chips)).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert np.abs(expected).max() > 0.05  # a real descriptor, not zeros


def test_cut_at_a_stage_gives_the_same_output(net, chips):
    model = DlibTorchNet(net).eval()
    cut = model.stage_start(256)
    assert model.ops[cut][0] == "tag"
    assert model.convs[model.conv_indices(cut)[0]].out_channels == 256
    assert all(model.convs[i].out_channels < 256 for i in model.conv_indices(0, cut))
    with torch.no_grad():
        x = model.prepare(chips)
        middle = model.run(x, 0, cut)
        assert tuple(middle.shape) == (len(chips), 128, 8, 8)
        np.testing.assert_allclose(model.run(middle, cut), model.run(x), atol=1e-6)
        pooled = model.run(middle, cut, model.pooled)
        assert tuple(pooled.shape) == (len(chips), 256, 1, 1)
    with pytest.raises(ValueError, match="512"):
        model.stage_start(512)


def test_written_back_weights_make_the_same_onnx_graph(net, chips):
    model = DlibTorchNet(net).eval()
    np.testing.assert_allclose(_onnx(model.to_dlib(net), chips), _onnx(net, chips), atol=1e-5)
    # changed weights and a new output layer travel into the graph
    with torch.no_grad():
        model.convs[-1].weight.mul_(1.5)
        model.convs[-1].bias.add_(0.01)
        fc = torch.randn(256, 3)
        expected = model.run(model.prepare(chips), 0, model.pooled).flatten(1) @ fc
    got = _onnx(model.to_dlib(net, fc.numpy()), chips)
    assert got.shape == (len(chips), 3)
    np.testing.assert_allclose(got, expected.numpy(), atol=1e-4)
    # the parsed network it was built from is left as it was
    np.testing.assert_allclose(
        _onnx(net, chips), _onnx(DlibTorchNet(net).to_dlib(net), chips), atol=1e-5
    )
