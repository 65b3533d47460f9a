"""analyze on real faces: tiny heads for the plumbing; the trained heads when present."""

from __future__ import annotations

import numpy as np
import pytest

from identity_service import FacePipeline
from identity_service.attributes import analyze_images, train_head
from identity_service.attributes.analyze import models_for
from identity_service.attributes.data import EMOTIONS, GENDERS, RACES
from identity_service.attributes.heads import AGE_BINS, HEAD_FILES, heads_dir
from identity_service.config import get_settings
from identity_service.errors import NoFaceError

FER_HAPPY = get_settings().shared_dir / "data/fer2013/validation/happy/PublicTest_10130075.jpg"


@pytest.fixture(scope="module")
def tiny_pipeline():
    """A pipeline whose heads are tiny ones trained here on synthetic embeddings."""
    pipeline = FacePipeline()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 128)).astype(np.float32)
    models = models_for(pipeline)
    for action, classes in (
        ("age", tuple(map(str, range(AGE_BINS)))),
        ("gender", GENDERS),
        ("race", RACES),
    ):
        y = rng.integers(0, len(classes), len(x))
        head = train_head(x, y, classes, action, seed=0, hidden=8, epochs=3)
        head.meta["embedder"] = pipeline.model
        models.heads[action] = head
    return pipeline


def test_analyze_real_lfw_faces_returns_every_field(tiny_pipeline, lfw_image):
    images = [lfw_image("Abel_Pacheco", 1), lfw_image("Akhmed_Zakayev", 1)]
    results = analyze_images(tiny_pipeline, images)
    assert len(results) == 2
    for faces in results:
        assert isinstance(faces, list) and faces and faces[0].face_source == "detected"
        a = faces[0]
        for name, classes in (("gender", GENDERS), ("race", RACES), ("emotion", EMOTIONS)):
            attr = getattr(a, name)
            assert set(attr.scores) == set(classes) and attr.value in classes
            assert sum(attr.scores.values()) == pytest.approx(1.0, abs=1e-5)
        assert sum(a.age.scores.values()) == pytest.approx(1.0, abs=1e-5)
        assert 0 <= a.age.value <= 100
        assert set(a.to_dict()) >= {"age", "gender", "emotion", "race", "box"}
    # the pipeline method is the same path, one image
    one = tiny_pipeline.analyze(images[0], actions=("gender",))
    assert one[0].gender is not None and one[0].age is None


def test_emotion_on_a_real_smiling_fer_face(tiny_pipeline):
    (face,) = tiny_pipeline.analyze(FER_HAPPY, actions=("emotion",))
    assert face.emotion.value == "happy"


def test_no_face_is_typed_and_whole_image_fallback(tiny_pipeline):
    blank = np.full((120, 120, 3), 128, np.uint8)
    with pytest.raises(NoFaceError):
        tiny_pipeline.analyze(blank, actions=("emotion",))
    (faces,) = analyze_images(tiny_pipeline, [blank], ("emotion",), on_no_face="whole-image")
    assert faces[0].face_source == "whole-image"
    assert sum(faces[0].emotion.scores.values()) == pytest.approx(1.0)


@pytest.mark.skipif(
    not all((heads_dir() / f).is_file() for f in HEAD_FILES.values()),
    reason="attribute heads not trained here (run `faceid train-attributes`)",
)
def test_trained_heads_are_plausible_on_a_known_adult(lfw_image):
    # Jean Chretien (born 1934), photographed 2001-2004 at about 68, on the held-out side of
    # the LFW people split.
    from identity_service.attributes.data import is_test

    assert is_test("Jean_Chretien")
    pipeline = FacePipeline()
    (face,) = pipeline.analyze(lfw_image("Jean_Chretien", 1), max_faces=1)
    assert face.gender.value == "male"
    assert 55 <= face.age.value <= 85


def test_cli_analyze_json(tiny_pipeline, lfw_image, monkeypatch):
    import json

    from typer.testing import CliRunner

    from identity_service.attributes import analyze_image
    from identity_service.cli import app

    monkeypatch.setattr(
        FacePipeline,
        "analyze",
        lambda self, img, actions: analyze_image(tiny_pipeline, img, actions),
    )
    out = CliRunner().invoke(app, ["analyze", str(lfw_image("Abel_Pacheco", 1)), "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["faces"][0]["gender"]["value"] in GENDERS
