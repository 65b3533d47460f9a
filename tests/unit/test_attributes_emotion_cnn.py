"""The emotion CNN: its ONNX export, training, mirror averaging and its place in EmotionModel."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from identity_service.attributes.emotion import (
    FEATURE_DIM,
    EmotionModel,
    ensemble,
    probabilities_from_faces,
)
from identity_service.attributes.emotion_cnn import CNN_DIM, CNN_SIDE, grey_face
from identity_service.attributes.heads import Head, probabilities_from_features
from identity_service.attributes.labels import EMOTIONS
from identity_service.config import ModelSettings, Settings, get_settings
from identity_service.errors import ModelError
from identity_service.training.attributes.emotion_cnn import (
    CnnRecipe,
    _network,
    cnn_model,
    train_cnn,
)
from identity_service.training.attributes.fit import train_head

TINY = CnnRecipe(widths=(8, 16), epochs=4, batch_size=32, lr=0.05)


def _stripes(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Class 0: horizontal stripes, 1: vertical stripes, 2: flat grey; with noise. Flips,
    small rotations and shifts keep each class what it is."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    ramp = (np.arange(CNN_SIDE) // 4 % 2) * 120.0
    faces = np.full((n, CNN_SIDE, CNN_SIDE), 70.0)
    faces[y == 0] += ramp[None, :, None]
    faces[y == 1] += ramp[None, None, :]
    faces += rng.normal(0, 20, faces.shape)
    return np.clip(faces, 0, 255).astype(np.uint8), y


def test_export_matches_the_torch_network_with_batch_norm_folded():
    torch.manual_seed(0)
    net = _network((8, 16, 32), 7, 0.4)
    for m in net.modules():  # non-trivial running statistics, as after training
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    net.eval()
    head = Head("emotion-cnn", EMOTIONS, cnn_model(net, 7))
    faces = np.random.default_rng(1).integers(0, 256, (5, CNN_SIDE, CNN_SIDE)).astype(np.uint8)
    with torch.no_grad():
        x = (torch.as_tensor(faces).float().unsqueeze(1) / 255.0 - 0.5) / 0.5
        expected = torch.softmax(net(x), dim=1).numpy()
    assert head.dim == CNN_DIM
    got = head.probabilities(faces.reshape(5, -1).astype(np.float32))
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_the_cnn_learns_a_task_that_survives_its_augmentation():
    faces, y = _stripes(400, 0)
    epochs: list[int] = []
    cnn = train_cnn(
        faces, y, ("h", "v", "flat"), seed=0, recipe=TINY, progress=lambda e, _: epochs.append(e)
    )
    assert epochs == [1, 2, 3, 4]
    assert cnn.meta["epochs"] == 4 and cnn.meta["seed"] == 0
    test, y_test = _stripes(200, 1)
    pred = probabilities_from_faces(cnn, test).argmax(axis=1)
    assert (pred == y_test).mean() > 0.9


def test_the_cnn_answer_is_the_face_and_its_mirror_averaged():
    faces, y = _stripes(64, 2)
    cnn = train_cnn(faces, y, ("h", "v", "flat"), seed=0, recipe=TINY)
    rng = np.random.default_rng(3)
    lopsided = rng.integers(0, 256, (3, CNN_SIDE, CNN_SIDE)).astype(np.uint8)
    lopsided[:, :, :20] = 0
    p = probabilities_from_faces(cnn, lopsided)
    one = cnn.probabilities(lopsided.reshape(3, -1).astype(np.float32))
    mirror = cnn.probabilities(lopsided[:, :, ::-1].reshape(3, -1).astype(np.float32))
    np.testing.assert_allclose(p, (one + mirror) / 2, atol=1e-6)
    np.testing.assert_allclose(p, probabilities_from_faces(cnn, lopsided[:, :, ::-1]), atol=1e-6)


def test_grey_face_is_the_48px_grey_of_the_aligned_crop():
    crop = np.zeros((112, 112, 3), np.uint8)
    crop[:, :56, 0] = 255  # left half red
    face = grey_face(crop)
    assert face.shape == (CNN_SIDE, CNN_SIDE) and face.dtype == np.uint8
    assert face[:, :20].mean() > 60 and face[:, 28:].max() == 0


@pytest.fixture(scope="module")
def members():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(40, FEATURE_DIM)).astype(np.float32)
    head = train_head(x, rng.integers(0, 7, 40), EMOTIONS, "emotion", seed=0, hidden=8, epochs=3)
    faces, y = _stripes(64, 5)
    cnn = train_cnn(faces, y % 7, EMOTIONS, seed=0, recipe=TINY)
    return head, cnn


def test_emotion_model_averages_the_head_and_the_cnn(members):
    head, cnn = members
    both = EmotionModel(get_settings(), head=head, cnn=cnn, load_trained=False)
    assert both.source == "fer-mobilefacenet+faceid-attr-emotion+faceid-attr-emotion-cnn"
    rng = np.random.default_rng(6)
    crops = [rng.integers(0, 255, size=(112, 112, 3), dtype=np.uint8) for _ in range(3)]
    p = both.probabilities(crops)
    from_head = probabilities_from_features(head, both.features(crops))
    from_cnn = probabilities_from_faces(cnn, np.stack([grey_face(c) for c in crops]))
    np.testing.assert_allclose(p, ensemble([from_head, from_cnn]), atol=1e-6)
    np.testing.assert_allclose(p, (from_head + from_cnn) / 2, atol=1e-6)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-5)
    assert not np.allclose(p, from_head, atol=1e-3)


def test_emotion_model_rejects_a_cnn_for_other_inputs(members):
    head, _ = members
    with pytest.raises(ModelError, match=str(CNN_DIM)):
        EmotionModel(get_settings(), head=head, cnn=head, load_trained=False)


def test_retraining_without_a_cnn_removes_the_old_one(members, tmp_path):
    from identity_service.attributes.heads import HEAD_FILES, heads_dir
    from identity_service.training.attributes.train_emotion import EmotionData, save_emotion_models

    head, cnn = members
    settings = Settings(data_dir=tmp_path, models=ModelSettings(attribute_models="trained"))
    faces, y = _stripes(4, 7)
    data = EmotionData(
        x=np.zeros((4, 2, FEATURE_DIM), np.float32),
        faces=faces,
        y=y,
        test=np.array([False, False, True, True]),
        how=["detected"] * 4,
    )
    paths = save_emotion_models(data, {"fer2013_publictest": {}}, settings, head, cnn)
    assert set(paths) == {"emotion", "emotion-cnn"} and paths["emotion-cnn"].is_file()
    assert EmotionModel(settings).source.endswith("+faceid-attr-emotion-cnn")
    save_emotion_models(data, {"fer2013_publictest": {}}, settings, head)
    assert not (heads_dir(settings) / HEAD_FILES["emotion-cnn"]).exists()
    assert EmotionModel(settings).source == "fer-mobilefacenet+faceid-attr-emotion"
