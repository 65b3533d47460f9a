"""analyze on real faces: tiny heads for the plumbing; heads trained here on a real sample."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from identity_service import FacePipeline
from identity_service.attributes import HEAD_FILES, analyze_images, describe_heads
from identity_service.attributes.analyze import ATTRIBUTE_EMBEDDER, models_for
from identity_service.attributes.emotion import EmotionModel
from identity_service.attributes.heads import AGE_BINS, probabilities_from_features
from identity_service.attributes.labels import EMOTIONS, GENDERS, RACES
from identity_service.attributes.tuned import TUNED_ACTIONS
from identity_service.attributes.tuned_features import FEATURES_FILE
from identity_service.config import ModelSettings, Settings, get_settings
from identity_service.errors import NoFaceError
from identity_service.models import MODELS
from identity_service.training.attributes.data import (
    SEED,
    embed_folder,
    is_test,
    person_of,
    read_lfw_gender,
    read_utkface,
)
from identity_service.training.attributes.emotion_cnn import CnnRecipe
from identity_service.training.attributes.fit import train_head
from identity_service.training.attributes.train import (
    AttributeData,
    evaluate_heads,
    save_heads,
    train_heads,
)
from identity_service.training.attributes.train_emotion import (
    EMOTION_RECIPE,
    evaluate_emotion,
    load_emotion_data,
    save_emotion_models,
    train_emotion_cnn,
    train_emotion_head,
)
from identity_service.training.attributes.train_tuned import (
    evaluate_tuned,
    frozen_for,
    load_dlib_resnet,
    save_tuned,
    train_tuned_network,
)
from identity_service.training.attributes.tuned import TunedNetwork, TunedRecipe

FER_HAPPY = get_settings().shared_dir / "data/fer2013/validation/happy/PublicTest_10130075.jpg"


@pytest.fixture(scope="module")
def tiny_pipeline(tmp_path_factory):
    """A pipeline whose heads are tiny ones trained here on synthetic embeddings (its model
    cache is empty, so no tuned head trained elsewhere answers instead)."""
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("tiny"), models=ModelSettings(attribute_models="trained")
    )
    pipeline = FacePipeline(embedder=ATTRIBUTE_EMBEDDER, settings=settings)
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
    # The FER model's own classifier, whatever heads the user's cache holds.
    models.emotion = EmotionModel(pipeline.settings, load_trained=False)
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


def _sample(items: list, n: int) -> list:
    """``n`` items spread evenly over a sorted list (UTKFace names start with the age)."""
    return [items[i] for i in np.linspace(0, len(items) - 1, n).astype(int)]


@pytest.fixture(scope="module")
def trained_pipeline(tmp_path_factory):
    """Heads trained here as `faceid train-attributes` does, on a small real sample.

    30 + 30 LFW people of the train side (one image each; gender from gender.csv) and 40
    UTKFace images (age, gender, race), embedded by the default pipeline into a temporary
    cache. The heads are saved as ONNX into that cache and loaded back by ``analyze``.
    """
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("faceid"), models=ModelSettings(attribute_models="trained")
    )
    pipeline = FacePipeline(embedder=ATTRIBUTE_EMBEDDER, settings=settings)
    cache = settings.cache_dir

    lfw = [(p, g) for p, g in read_lfw_gender(settings.lfw_dir) if p.endswith("_0001.jpg")]
    lfw = [(p, g) for p, g in lfw if not is_test(person_of(p))]
    lfw = _sample([x for x in lfw if x[1] == 0], 30) + _sample([x for x in lfw if x[1] == 1], 30)
    lfw_x, _ = embed_folder(
        pipeline, "lfw", settings.lfw_dir / "images", [p for p, _ in lfw], cache
    )
    utk_dir = settings.shared_dir / "data" / "utkface"
    utk = _sample([i for i in read_utkface(utk_dir) if i.race >= 0], 40)
    utk_x, utk_how = embed_folder(pipeline, "utk", utk_dir, [i.relpath for i in utk], cache)
    data = AttributeData(
        utk_x=utk_x,
        utk_age=np.array([i.age for i in utk]),
        utk_gender=np.array([i.gender for i in utk]),
        utk_race=np.array([i.race for i in utk]),
        utk_test=np.array([is_test(i.relpath) for i in utk]),
        utk_how=utk_how,
        lfw_x=lfw_x,
        lfw_gender=np.array([g for _, g in lfw]),
        lfw_test=np.zeros(len(lfw), bool),
        lfw_people=len(lfw),
        embedder=pipeline.model,
        seed=SEED,
        utk_files=[i.relpath for i in utk],
        lfw_files=[p for p, _ in lfw],
    )
    assert np.isfinite(data.utk_x).all() and np.isfinite(data.lfw_x).all()
    heads = train_heads(data, epochs=200)
    paths = save_heads(heads, data, evaluate_heads(heads, data), settings)
    # the tuned network, as `train-attributes` trains it, briefly and at a higher rate
    net = load_dlib_resnet(settings)
    acts = frozen_for(pipeline, TunedNetwork(net), data, settings.shared_dir, cache)
    assert acts[0].shape == (40, 2, 128, 8, 8) and acts[1].shape == (60, 2, 128, 8, 8)
    recipe = TunedRecipe(epochs=8, batch_size=16, lr=1e-3)
    network = train_tuned_network(net, data, *acts, seed=SEED, recipe=recipe)
    metrics = evaluate_tuned(network, heads, data, *acts)
    paths.update(save_tuned(network, list(TUNED_ACTIONS), data, metrics, recipe, SEED, settings))
    emo = load_emotion_data(pipeline, settings.shared_dir, cache, limit=30)
    assert len(emo.y) == 60 and np.isfinite(emo.x).all()
    assert emo.faces.shape == (60, 48, 48) and emo.faces.std() > 10  # real grey faces
    head = train_emotion_head(emo, recipe=replace(EMOTION_RECIPE, epochs=3))
    cnn = train_emotion_cnn(emo, recipe=CnnRecipe(widths=(8, 16), epochs=2, batch_size=16))
    metrics = evaluate_emotion(head, emo, cnn)
    paths.update(save_emotion_models(emo, metrics, settings, head, cnn))
    assert {p.name for p in paths.values()} == {*HEAD_FILES.values(), FEATURES_FILE}
    return pipeline


def test_trained_heads_are_plausible_on_a_known_adult(trained_pipeline, lfw_image):
    # Jean Chretien (born 1934), photographed 2001-2004 at about 68, on the held-out side of
    # the LFW people split, so not among the training images.
    assert is_test("Jean_Chretien")
    (face,) = trained_pipeline.analyze(lfw_image("Jean_Chretien", 1), max_faces=1)
    assert face.gender.value == "male"
    # 40 UTKFace images cannot teach an age to within years: only a sane number is asked for.
    assert np.isfinite(face.age.value) and 0 <= face.age.value <= 100
    assert face.race.value in RACES


def test_trained_heads_are_onnx_files_with_their_provenance(trained_pipeline):
    info = {i.action: i for i in describe_heads(trained_pipeline.settings)}
    assert set(info) == set(HEAD_FILES)
    emotion = info.pop("emotion")
    assert emotion.present and emotion.error is None
    assert emotion.embedder == MODELS["fer-mobilefacenet"].tag
    assert "FER2013" in emotion.provenance["licence"]
    assert emotion.provenance["data"]["fer2013"]["train"] == 30
    assert emotion.metrics["fer2013_publictest"]["n"] == 30
    assert set(emotion.metrics["per_class_recall"]) <= set(EMOTIONS)
    assert set(emotion.metrics["members"]) == {"head", "cnn"}
    cnn = info.pop("emotion-cnn")
    assert cnn.present and cnn.error is None and cnn.classes == EMOTIONS
    assert cnn.provenance["network"] == "vgg[8, 16]" and cnn.provenance["epochs"] == 2
    assert cnn.metrics == emotion.metrics  # measured together, as analyze runs them
    assert "FER2013" in cnn.provenance["licence"]
    for action, head in info.items():
        assert head.present and head.path.suffix == ".onnx" and head.error is None, action
        assert head.embedder == trained_pipeline.model
        assert head.provenance["trained_by"] == "faceid train-attributes"
        assert "UTKFace" in head.provenance["licence"]
        assert head.provenance["data"]["lfw_gender"]["images"] == 60
    for name in ("gender", "gender-tuned"):
        assert info[name].metrics["utkface_all"]["n"] > 0
    assert info["age"].metrics["n"] > 0
    tuned = info["race-tuned"]
    assert tuned.provenance["reads"] == "tuned-features" and tuned.path.stat().st_size < 10_000
    assert tuned.provenance["recipe"]["epochs"] == 8 and "CC0" in tuned.provenance["licence"]
    # measured beside its members, as analyze combines them
    assert tuned.metrics["answer"] == "tuned network"
    assert set(tuned.metrics["embedding_head"]) == {"utkface", "per_group_recall"}
    assert set(tuned.metrics["tuned"]) == {"utkface", "per_group_recall"}
    gender = info["gender-tuned"].metrics
    assert gender["answer"] == "tuned network and embedding head averaged"
    assert gender["tuned"]["utkface_all"]["n"] == gender["utkface_all"]["n"]


def test_trained_tuned_network_is_what_analyze_uses(trained_pipeline, lfw_image):
    models = models_for(trained_pipeline)
    assert [h.name for h in models.answerers("age")] == ["age-tuned"]
    assert [h.name for h in models.answerers("race")] == ["race-tuned"]
    assert [h.name for h in models.answerers("gender")] == ["gender-tuned", "gender"]
    image = lfw_image("Jean_Chretien", 1)
    (face,) = trained_pipeline.analyze(image, actions=("race", "gender"), max_faces=1)
    (chip,) = [f.crop for f in trained_pipeline.extract_faces(image, 1)]
    features = models.tuned_features()
    assert features.meta["embedder"] == trained_pipeline.model
    assert features.meta["features_id"] == models.tuned("race").meta["features_id"]
    p = probabilities_from_features(models.tuned("race"), features.of(chip[None]))[0]
    assert face.race.scores == pytest.approx(dict(zip(RACES, p, strict=True)), abs=1e-6)
    (embedded,) = trained_pipeline.represent(image, max_faces=1)
    p = probabilities_from_features(models.tuned("gender"), features.of(chip[None]))[0]
    p = (p + models.head("gender").probabilities(embedded.embedding[None])[0]) / 2
    assert face.gender.scores == pytest.approx(dict(zip(GENDERS, p, strict=True)), abs=1e-6)


def test_trained_emotion_head_is_what_analyze_uses(trained_pipeline):
    (face,) = trained_pipeline.analyze(FER_HAPPY, actions=("emotion",))
    model = models_for(trained_pipeline).emotion_model()
    assert model.source == "fer-mobilefacenet+faceid-attr-emotion+faceid-attr-emotion-cnn"
    assert face.emotion.value in EMOTIONS
    assert sum(face.emotion.scores.values()) == pytest.approx(1.0, abs=1e-5)


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
