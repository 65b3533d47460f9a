"""dlib's face ResNet converted to ONNX: numerically the same network as dlib's own."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from identity_service.config import get_settings
from identity_service.embed.dlib_convert import (
    DAT_FILENAME,
    INPUT_NAME,
    OUTPUT_NAME,
    convert_dlib_resnet,
    ensure_onnx,
)
from identity_service.embed.dlib_onnx import DlibResNetOnnxEmbedder
from identity_service.errors import ModelError
from identity_service.models import get_model, resolve_file

# The first image of ten LFW people, each with one face dlib's HOG detector finds.
PEOPLE = [
    "AJ_Cook",
    "Aaron_Peirsol",
    "Abbas_Kiarostami",
    "Abdul_Rahman",
    "Abdullah_Gul",
    "Abid_Hamid_Mahmud_Al-Tikriti",
    "Adam_Herbert",
    "Adelina_Avila",
    "Adrian_Annus",
    "Adriana_Perez_Navarro",
]


@pytest.fixture(scope="module")
def dat_path() -> Path:
    spec = get_model("dlib-resnet-v1")
    (file,) = [f for f in spec.files if f.filename == DAT_FILENAME]
    return resolve_file(file, get_settings())


@pytest.fixture(scope="module")
def onnx_session(dat_path, tmp_path_factory):
    import onnxruntime as ort

    path = convert_dlib_resnet(dat_path, tmp_path_factory.mktemp("onnx") / "dlib.onnx")
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def chips(pipeline, lfw_image) -> list[np.ndarray]:
    out = []
    for name in PEOPLE:
        faces = pipeline.extract_faces(lfw_image(name, 1))
        assert faces, f"no face found in {name}_0001.jpg"
        out.append(faces[0].crop)
    return out


@pytest.fixture(scope="module")
def dlib_descriptors(dat_path, chips) -> np.ndarray:
    import dlib

    net = dlib.face_recognition_model_v1(str(dat_path))
    return np.array([np.asarray(v) for v in net.compute_face_descriptor(chips)], np.float32)


def _nchw(chips: list[np.ndarray]) -> np.ndarray:
    return np.stack(chips).transpose(0, 3, 1, 2).astype(np.float32)


def test_onnx_matches_dlib_on_real_chips(onnx_session, chips, dlib_descriptors):
    assert all(c.shape == (150, 150, 3) and c.dtype == np.uint8 for c in chips)
    out = onnx_session.run([OUTPUT_NAME], {INPUT_NAME: _nchw(chips)})[0]
    assert out.shape == (len(chips), 128) and out.dtype == np.float32
    assert np.abs(out - dlib_descriptors).max() < 1e-3
    cos = (out * dlib_descriptors).sum(1) / (
        np.linalg.norm(out, axis=1) * np.linalg.norm(dlib_descriptors, axis=1)
    )
    assert cos.min() > 0.9999
    # raw, not normalised: dlib's descriptors have norms well below 1
    assert np.allclose(np.linalg.norm(out, axis=1), np.linalg.norm(dlib_descriptors, axis=1), 1e-4)


def test_batch_of_one_equals_batch_of_n(onnx_session, chips):
    batch = _nchw(chips)
    together = onnx_session.run([OUTPUT_NAME], {INPUT_NAME: batch})[0]
    alone = np.concatenate(
        [onnx_session.run([OUTPUT_NAME], {INPUT_NAME: batch[i : i + 1]})[0] for i in range(5)]
    )
    assert np.allclose(alone, together[:5], rtol=0, atol=1e-6)


def test_model_contract(onnx_session):
    (inp,) = onnx_session.get_inputs()
    (out,) = onnx_session.get_outputs()
    assert inp.name == INPUT_NAME and inp.shape[1:] == [3, 150, 150]
    assert isinstance(inp.shape[0], str)  # dynamic batch
    assert out.name == OUTPUT_NAME and out.shape[1] == 128


@pytest.mark.parametrize("keep", [0, 1, 17, 300, 0.5, -1])
def test_truncated_dat_is_a_model_error(dat_path, tmp_path, keep):
    data = dat_path.read_bytes()
    cut = int(len(data) * keep) if isinstance(keep, float) else keep % len(data)
    bad = tmp_path / "truncated.dat"
    bad.write_bytes(data[:cut])
    target = tmp_path / "out.onnx"
    with pytest.raises(ModelError, match="truncated"):
        convert_dlib_resnet(bad, target)
    assert not target.exists()
    assert list(tmp_path.iterdir()) == [bad]  # no half-written file left behind


def test_other_files_are_model_errors(dat_path, tmp_path):
    sp5 = resolve_file(get_model("dlib-hog").files[0], get_settings())  # another dlib model
    with pytest.raises(ModelError, match="not a dlib face recognition ResNet"):
        convert_dlib_resnet(sp5, tmp_path / "x.onnx")
    junk = tmp_path / "junk.dat"
    junk.write_bytes(dat_path.read_bytes() + b"\x00")
    with pytest.raises(ModelError, match="trailing"):
        convert_dlib_resnet(junk, tmp_path / "x.onnx")
    with pytest.raises(ModelError, match="cannot read"):
        convert_dlib_resnet(tmp_path / "missing.dat", tmp_path / "x.onnx")


def test_cache_is_reused_and_regenerated_when_stale_or_corrupt(dat_path, tmp_path):
    onnx_path = ensure_onnx(dat_path, tmp_path)
    meta_path = onnx_path.with_name(onnx_path.name + ".json")
    meta = json.loads(meta_path.read_text())
    assert meta["source_sha256"] == get_model("dlib-resnet-v1").files[0].sha256
    stamp = onnx_path.stat().st_mtime_ns
    assert ensure_onnx(dat_path, tmp_path) == onnx_path
    assert onnx_path.stat().st_mtime_ns == stamp  # reused, not rewritten

    good = onnx_path.read_bytes()
    onnx_path.write_bytes(good[: len(good) // 2])  # corrupt
    ensure_onnx(dat_path, tmp_path)
    assert onnx_path.read_bytes() == good

    meta_path.write_text(json.dumps({**meta, "source_sha256": "0" * 64}))  # another .dat
    stamp = onnx_path.stat().st_mtime_ns
    ensure_onnx(dat_path, tmp_path)
    assert onnx_path.stat().st_mtime_ns != stamp
    assert json.loads(meta_path.read_text())["source_sha256"] == meta["source_sha256"]


@pytest.fixture(scope="module")
def cache_settings(tmp_path_factory):
    return get_settings().model_copy(update={"data_dir": tmp_path_factory.mktemp("data")})


def test_embedder_matches_dlib_embedder(cache_settings, chips, dlib_descriptors):
    emb = DlibResNetOnnxEmbedder(cache_settings)
    assert emb.tag == "dlib-resnet-v1@1" and emb.dim == 128  # the same model, faster
    assert emb.onnx_path == cache_settings.cache_dir / "models" / (
        "dlib_face_recognition_resnet_model_v1.onnx"
    )
    out = emb.embed_crops(chips, batch_size=4)
    expected = dlib_descriptors / np.linalg.norm(dlib_descriptors, axis=1, keepdims=True)
    assert out.shape == (len(chips), 128) and out.dtype == np.float32
    assert np.abs(out - expected).max() < 1e-4


def test_embedder_crop_is_dlibs_chip(cache_settings, pipeline, lfw_image):
    from identity_service.imaging import load_image

    emb = DlibResNetOnnxEmbedder(cache_settings, threads=1)
    image = load_image(lfw_image(PEOPLE[0], 1))
    det = pipeline.detect(image)[0]
    assert np.array_equal(emb.crop(image, det), pipeline.embedder.crop(image, det))
    det.dlib_shape = None  # a detection from another detector: the 5 points are fitted
    assert emb.crop(image, det).shape == (150, 150, 3)


def test_views_average_fixed_perturbations_of_the_chip(cache_settings, chips):
    from identity_service.embed.tta import jitter_views, render

    plain = DlibResNetOnnxEmbedder(cache_settings)
    flip = DlibResNetOnnxEmbedder(cache_settings, views=2)
    tta = DlibResNetOnnxEmbedder(cache_settings, views=6)
    # other embeddings: never mixed in an index, calibrated apart
    assert plain.tag == "dlib-resnet-v1@1"
    assert flip.tag == "dlib-resnet-v1-tta2@1" and tta.tag == "dlib-resnet-v1-tta6@1"
    raw = plain._forward(chips[:3])
    mirrored = plain._forward([c[:, ::-1] for c in chips[:3]])
    assert np.allclose(flip._forward(chips[:3]), (raw + mirrored) / 2, atol=1e-5)
    # a mirrored face gets the same flip embedding
    a = flip.embed_crops(chips[:3])
    b = flip.embed_crops([c[:, ::-1] for c in chips[:3]])
    assert np.allclose(a, b, atol=1e-5)
    # the views are fixed: the same face always gets the same embedding
    views = jitter_views(6)
    assert views == jitter_views(6) and views[:2] == jitter_views(2)
    by_hand = np.mean([plain._forward([render(chips[0], v)])[0] for v in views], axis=0)
    assert np.allclose(tta._forward(chips[:1])[0], by_hand, atol=1e-5)
    assert np.allclose(tta.embed_crops(chips[:2]), tta.embed_crops(chips[:2]), atol=0)
    # small perturbations: every view still looks like the same face
    for v in views:
        assert (
            float(plain.embed_crops([render(chips[0], v)])[0] @ plain.embed_crops(chips[:1])[0])
            > 0.95
        )
    with pytest.raises(ValueError, match="150x150"):
        plain.embed_crops([np.zeros((112, 112, 3), np.uint8)])


def test_cuda_without_a_gpu_build_is_a_model_error(cache_settings):
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.fail("this test is for a CPU-only onnxruntime; run the GPU checks instead")
    with pytest.raises(ModelError, match="gpu"):
        DlibResNetOnnxEmbedder(cache_settings, device="cuda")
