from __future__ import annotations

import numpy as np
import pytest

from identity_service.embed import create_embedder
from identity_service.embed.onnx_arcface import OnnxArcFaceEmbedder
from identity_service.errors import ModelError, UnknownModelError
from identity_service.types import Box, Detection


def _tiny_arcface_onnx(path, dim=8, fixed_batch=False):
    """A real ONNX model with the ArcFace contract: N x 3 x 112 x 112 -> N x dim."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weights = np.random.default_rng(0).normal(size=(3, dim)).astype(np.float32)
    batch = 1 if fixed_batch else "N"
    graph = helper.make_graph(
        [
            helper.make_node("GlobalAveragePool", ["input.1"], ["pooled"]),
            helper.make_node("Flatten", ["pooled"], ["flat"]),
            helper.make_node("MatMul", ["flat", "W"], ["683"]),
        ],
        "tiny-arcface",
        [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [batch, 3, 112, 112])],
        [helper.make_tensor_value_info("683", TensorProto.FLOAT, [batch, dim])],
        initializer=[numpy_helper.from_array(weights, "W")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return weights


@pytest.mark.parametrize("fixed_batch", [False, True])
def test_onnx_arcface_contract(tmp_path, fixed_batch):
    path = tmp_path / "tiny.onnx"
    weights = _tiny_arcface_onnx(path, fixed_batch=fixed_batch)
    emb = OnnxArcFaceEmbedder(path, name="tiny", version="t1")
    assert emb.dim == 8 and emb.tag == "tiny@t1" and emb.size == 112
    rng = np.random.default_rng(1)
    crops = [rng.integers(0, 256, (112, 112, 3), dtype=np.uint8) for _ in range(5)]
    out = emb.embed_crops(crops, batch_size=2)
    assert out.shape == (5, 8) and out.dtype == np.float32
    assert np.allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    # the documented preprocessing: RGB, (x - 127.5) / 127.5, NCHW
    expected = np.stack([((c.astype(np.float32) - 127.5) / 127.5).mean(axis=(0, 1)) for c in crops])
    expected = expected @ weights
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    assert np.allclose(out, expected, atol=1e-4)
    # batching does not change results
    assert np.allclose(emb.embed_crops(crops[:1]), out[:1], atol=1e-5)


def test_onnx_embedder_aligns_to_the_arcface_template(tmp_path):
    from identity_service.align import ARCFACE_TEMPLATE_112

    path = tmp_path / "tiny.onnx"
    _tiny_arcface_onnx(path)
    emb = OnnxArcFaceEmbedder(path, name="tiny", version="t1")
    image = np.zeros((300, 300, 3), np.uint8)
    landmarks = ARCFACE_TEMPLATE_112 * 2 + 20  # the template, scaled and shifted
    for x, y in landmarks.astype(int):
        image[y - 1 : y + 2, x - 1 : x + 2] = 255
    det = Detection(Box(0, 0, 300, 300), landmarks.astype(np.float32), 1.0, "test")
    crop = emb.crop(image, det)
    assert crop.shape == (112, 112, 3)
    for x, y in ARCFACE_TEMPLATE_112.round().astype(int):
        assert crop[y - 1 : y + 2, x - 1 : x + 2].max() > 100


def test_bad_onnx_file_is_a_model_error(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not onnx")
    with pytest.raises(ModelError):
        OnnxArcFaceEmbedder(bad, name="bad", version="0")


def test_cuda_without_gpu_build_is_a_clear_error(tmp_path):
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.fail("this test is for a CPU-only onnxruntime; run the GPU checks instead")
    path = tmp_path / "tiny.onnx"
    _tiny_arcface_onnx(path)
    with pytest.raises(ModelError, match="gpu"):
        OnnxArcFaceEmbedder(path, name="tiny", version="t1", device="cuda")


def test_onnx_embedder_by_file_path(tmp_path):
    path = tmp_path / "mine.onnx"
    _tiny_arcface_onnx(path, dim=16)
    emb = create_embedder(str(path))
    assert emb.dim == 16 and emb.tag == "mine@file"


def test_unknown_or_wrong_kind_embedder():
    with pytest.raises(UnknownModelError):
        create_embedder("facenet-9000")
    with pytest.raises(UnknownModelError, match="not an embedder"):
        create_embedder("yunet")


def test_dlib_embeddings_are_normalised_and_tagged(pipeline, lfw_image):
    faces = pipeline.represent(lfw_image("Abel_Pacheco", 1))
    assert len(faces) == 1
    face = faces[0]
    assert face.embedding.shape == (128,) and face.embedding.dtype == np.float32
    assert abs(float(np.linalg.norm(face.embedding)) - 1.0) < 1e-5
    assert face.model == pipeline.model and face.model.startswith("dlib-resnet-v1")


def test_dlib_embedder_works_on_yunet_detections(lfw_image):
    from identity_service import FacePipeline

    a = FacePipeline(detector="yunet").represent(lfw_image("Abel_Pacheco", 1))[0]
    b = FacePipeline(detector="dlib-hog").represent(lfw_image("Abel_Pacheco", 1))[0]
    assert float(a.embedding @ b.embedding) > 0.97  # the same face, boxed by two detectors
