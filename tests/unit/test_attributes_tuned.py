"""The tuned network: its ONNX export, its training, and its place in analyze."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from identity_service import FacePipeline
from identity_service.attributes import HEAD_FILES
from identity_service.attributes.analyze import ATTRIBUTE_EMBEDDER, models_for
from identity_service.attributes.heads import heads_dir, probabilities_from_features
from identity_service.attributes.labels import GENDERS, RACES
from identity_service.attributes.tuned_features import (
    CHIP_READS,
    FEATURES_FILE,
    FEATURES_READS,
    TunedFeatures,
)
from identity_service.config import ModelSettings, Settings, get_settings
from identity_service.errors import ModelMismatchError
from identity_service.imaging import load_image
from identity_service.training.attributes.chips import face_chips
from identity_service.training.attributes.fit import train_head
from identity_service.training.attributes.train_tuned import (
    load_dlib_resnet,
    remove_tuned,
    tuned_available,
)
from identity_service.training.attributes.tuned import (
    TunedLabels,
    TunedNetwork,
    TunedRecipe,
    train_tuned,
)


@pytest.fixture(scope="module")
def net():
    return load_dlib_resnet(get_settings())


def _chips(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Smooth random chips; label 1 tints them red, label 0 blue."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    base = rng.integers(40, 200, (n, 15, 15, 1)).repeat(10, axis=1).repeat(10, axis=2)
    chips = np.repeat(base, 3, axis=3).astype(np.int16)
    chips[y == 1, :, :, 0] += 100
    chips[y == 0, :, :, 2] += 100
    return np.clip(chips, 0, 255).astype(np.uint8), y


def test_export_equals_the_torch_network(net):
    network = TunedNetwork(net)
    with torch.no_grad():  # weights unlike dlib's, so the export must carry them
        for i in network.dlib.conv_indices(network.cut):
            network.dlib.convs[i].weight.mul_(1.2)
        network.outputs["race"].bias.copy_(torch.linspace(-1, 1, 5))
    chips, _ = _chips(4, seed=1)
    expected = network.probabilities(network.frozen(chips))
    features, heads = network.export({"gender": GENDERS, "race": RACES}, {"seed": 1})
    assert features.meta == {"seed": 1, "reads": CHIP_READS, "features_id": features.id}
    assert features.of(chips).shape == (4, 2, 256) and features.dim == 256
    assert features.of(chips[:0]).shape == (0, 2, 256)
    for action, classes in (("gender", GENDERS), ("race", RACES)):
        head = heads[action]
        assert head.dim == 256 and head.name == f"{action}-tuned" and head.classes == classes
        assert head.meta == {"seed": 1, "reads": FEATURES_READS, "features_id": features.id}
        got = probabilities_from_features(head, features.of(chips))
        np.testing.assert_allclose(got, expected[action], atol=1e-4)
        np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-5)
    assert expected["age"].shape == (4, 101)
    # another network exports under another id
    with torch.no_grad():
        first = next(iter(network.dlib.conv_indices(network.cut)))
        network.dlib.convs[first].weight.mul_(1.1)
    assert network.export({"race": RACES}, {})[0].id != features.id


def test_training_learns_and_leaves_unlabelled_outputs_alone(net):
    chips, y = _chips(96, seed=2)
    network = TunedNetwork(net)
    acts = network.frozen(chips)
    assert acts.shape == (96, 2, 128, 8, 8) and acts.dtype == np.float16
    np.testing.assert_array_equal(network.frozen(chips[:3], mirror=False), acts[:3, :1])
    unknown = np.full(64, -1)
    losses: list[float] = []
    trained = train_tuned(
        net,
        acts[:64],
        TunedLabels(gender=y[:64], race=unknown, age=unknown),
        seed=2,
        recipe=TunedRecipe(epochs=10, batch_size=8, lr=1e-3),
        progress=lambda epoch, loss: losses.append(loss),
    )
    assert len(losses) == 10 and losses[-1] < losses[0]
    pred = trained.probabilities(acts[64:])["gender"].argmax(axis=1)
    assert (pred == y[64:]).mean() >= 0.9
    # No race or age label: no gradient and no weight decay, so those layers stay as the
    # training seed initialised them.
    torch.manual_seed(2)
    fresh = TunedNetwork(net)
    for action in ("race", "age"):
        torch.testing.assert_close(
            trained.outputs[action].weight, fresh.outputs[action].weight, rtol=0, atol=0
        )
    assert not torch.equal(trained.outputs["gender"].weight, fresh.outputs["gender"].weight)


def test_a_lower_cut_trains_and_exports_the_stages_from_it(net):
    network = TunedNetwork(net, cut_channels=128)
    assert network.cut < TunedNetwork(net).cut
    chips, _ = _chips(3, seed=4)
    acts = network.frozen(chips)
    assert acts.shape == (3, 2, 64, 17, 17)
    trained = {id(p) for p in network.parameters(pretrained=True)}
    first = network.dlib.conv_indices(network.cut)[0]  # the 128-channel stage's first conv
    assert id(network.dlib.convs[first].weight) in trained
    assert len(trained) > len(list(TunedNetwork(net).parameters(pretrained=True)))
    with torch.no_grad():
        network.dlib.convs[first].weight.mul_(1.2)
    expected = network.probabilities(acts)["gender"]
    features, heads = network.export({"gender": GENDERS}, {})
    got = probabilities_from_features(heads["gender"], features.of(chips))
    np.testing.assert_allclose(got, expected, atol=1e-4)
    labels = TunedLabels(gender=np.array([0, 1, 0]), race=np.full(3, -1), age=np.full(3, -1))
    with pytest.raises(ValueError, match="cut_channels=256"):  # activations from the 128 cut
        train_tuned(net, acts, labels, seed=0, recipe=TunedRecipe(epochs=1))


def test_face_chips_are_the_pipelines_own_chips():
    shared = get_settings().shared_dir / "data" / "lfw" / "images"
    paths = sorted((shared / "Adrien_Brody").glob("*.jpg"))[:2]
    with FacePipeline(embedder=ATTRIBUTE_EMBEDDER) as pipeline:
        chips = face_chips(pipeline, paths)
        assert chips.shape == (2, 150, 150, 3) and chips.dtype == np.uint8
        for chip, path in zip(chips, paths, strict=True):
            face = pipeline.extract_faces(load_image(path), 1)[0]
            np.testing.assert_array_equal(chip, face.crop)
        assert face_chips(pipeline, []).shape == (0, 150, 150, 3)


def test_tuned_heads_need_a_dlib_pipeline_and_go_when_not_retrained(tmp_path):
    assert tuned_available(SimpleNamespace(embedder=SimpleNamespace(name="dlib-resnet-v1")))
    assert not tuned_available(SimpleNamespace(embedder=SimpleNamespace(name="arcface-r50")))
    settings = Settings(data_dir=tmp_path, models=ModelSettings(attribute_models="trained"))
    folder = heads_dir(settings)
    folder.mkdir(parents=True)
    for action in ("gender", "race"):
        (folder / HEAD_FILES[f"{action}-tuned"]).write_bytes(b"old")
    (folder / HEAD_FILES["gender"]).write_bytes(b"head")
    (folder / FEATURES_FILE).write_bytes(b"network")
    # race-tuned still reads the network
    assert remove_tuned(["gender"], settings) == [HEAD_FILES["gender-tuned"]]
    assert (folder / FEATURES_FILE).is_file()
    removed = remove_tuned(["gender", "race", "age"], settings)
    assert removed == [HEAD_FILES["race-tuned"], FEATURES_FILE]
    assert sorted(p.name for p in folder.iterdir()) == [HEAD_FILES["gender"]]


def _tiny_features(embedder: str) -> TunedFeatures:
    """A stand-in features model (an Identity graph) with the given provenance."""
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["embeddings"], ["features"])],
        "tiny",
        [helper.make_tensor_value_info("embeddings", TensorProto.FLOAT, ["n", 8])],
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["n", 8])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return TunedFeatures(model.SerializeToString(), {"embedder": embedder, "features_id": "a1"})


def _tiny_head(meta: dict[str, object]):
    rng = np.random.default_rng(0)
    head = train_head(
        rng.normal(size=(20, 8)).astype(np.float32),
        rng.integers(0, 2, 20),
        GENDERS,
        "gender-tuned",
        seed=0,
        hidden=4,
        epochs=2,
    )
    head.meta.update(meta)
    return head


def test_a_tuned_network_from_another_embedder_is_a_typed_error(tmp_path, lfw_image):
    settings = Settings(data_dir=tmp_path, models=ModelSettings(attribute_models="trained"))
    pipeline = FacePipeline(embedder=ATTRIBUTE_EMBEDDER, settings=settings)
    _tiny_features("another-embedder@1").save(heads_dir(settings) / FEATURES_FILE)
    head = _tiny_head({"embedder": pipeline.model, "reads": FEATURES_READS, "features_id": "a1"})
    head.save(heads_dir(settings) / HEAD_FILES["gender-tuned"])
    with pytest.raises(ModelMismatchError, match="another-embedder"):
        pipeline.analyze(lfw_image("Abel_Pacheco", 1), actions=("gender",))


def test_a_tuned_head_from_another_export_is_a_typed_error(tmp_path, lfw_image):
    settings = Settings(data_dir=tmp_path, models=ModelSettings(attribute_models="trained"))
    pipeline = FacePipeline(embedder=ATTRIBUTE_EMBEDDER, settings=settings)
    _tiny_features(pipeline.model).save(heads_dir(settings) / FEATURES_FILE)
    head = _tiny_head({"embedder": pipeline.model, "reads": FEATURES_READS, "features_id": "b2"})
    head.save(heads_dir(settings) / HEAD_FILES["gender-tuned"])
    for _ in range(2):  # not cached as usable after the first refusal
        with pytest.raises(ModelMismatchError, match="re-run `faceid train-attributes`"):
            pipeline.analyze(lfw_image("Abel_Pacheco", 1), actions=("gender",))
    assert models_for(pipeline).tuned("race") is None  # not trained: the head would answer


def test_an_older_tuned_head_without_the_network_is_not_used(tmp_path, caplog):
    settings = Settings(data_dir=tmp_path, models=ModelSettings(attribute_models="trained"))
    pipeline = FacePipeline(embedder=ATTRIBUTE_EMBEDDER, settings=settings)
    head = _tiny_head({"embedder": pipeline.model, "reads": "dlib-chip-150"})
    head.save(heads_dir(settings) / HEAD_FILES["gender-tuned"])
    with caplog.at_level("WARNING"):
        assert models_for(pipeline).tuned("gender") is None
    assert "train-attributes" in caplog.text


def test_faceid_models_shows_the_tuned_network_provenance(tmp_path):
    from identity_service.service.inventory import features_provenance

    path = _tiny_features("dlib-resnet-v1-tta8@1").save(tmp_path / FEATURES_FILE)
    shown = features_provenance(path)
    assert shown["provenance"] == {"embedder": "dlib-resnet-v1-tta8@1", "features_id": "a1"}
    (tmp_path / "bad.onnx").write_bytes(b"not onnx")
    assert "cannot load" in features_provenance(tmp_path / "bad.onnx")["error"]
