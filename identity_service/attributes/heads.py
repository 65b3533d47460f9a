"""Small heads: trained with torch (``identity_service.training.attributes``: ``fit``,
``tuned``), run as ONNX.

The age, gender and race heads read the pipeline's face embeddings; the emotion head reads the
FER model's features (:mod:`.emotion`); the tuned heads read the tuned network's features
(:mod:`.tuned_features`). A head is one hidden layer (ReLU) and a softmax over its classes, or,
for the tuned heads, an output layer and a softmax. The age heads have 101 classes (0..100
years) and report the expectation as the age. Each head is one ONNX file in the model cache,
``faceid-attr-<name>.onnx``, written by ``faceid train-attributes``: the graph
``embeddings (n, dim) float32 -> probabilities (n, classes)`` (Gemm, [Relu, Gemm,] Softmax), with
its name, classes and provenance (data, seed, metrics, embedder, licence) in the model's
``metadata_props``. Loading needs onnxruntime only, on CPU or CUDA as the ``device`` setting
says. Heads from before ONNX (``.npz``) are converted once, on first load. Nothing trained is
committed.
"""

from __future__ import annotations

import json
import logging
from dataclasses import InitVar, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ..config import Settings, get_settings
from ..errors import ModelError, ModelFileMissingError
from ..files import write_bytes_atomically
from ..models import get_model, resolve_file
from .runtime import ort_session

log = logging.getLogger(__name__)

HEAD_FILES = {
    "age": "faceid-attr-age.onnx",
    "gender": "faceid-attr-gender.onnx",
    "race": "faceid-attr-race.onnx",
    "emotion": "faceid-attr-emotion.onnx",  # on FER-model features, not face embeddings
    "emotion-cnn": "faceid-attr-emotion-cnn.onnx",  # on the 48x48 grey face (emotion_cnn.py)
    # output layers on the features of dlib's ResNet with its last stages fine-tuned (tuned.py)
    "age-tuned": "faceid-attr-age-tuned.onnx",
    "gender-tuned": "faceid-attr-gender-tuned.onnx",
    "race-tuned": "faceid-attr-race-tuned.onnx",
}
LEGACY_SUFFIX = ".npz"  # the numpy format heads had before ONNX
AGE_BINS = 101
INPUT_NAME = "embeddings"
OUTPUT_NAME = "probabilities"
# opset 17 / IR 8 load on every onnxruntime pyproject allows (>= 1.17), as the dlib graph does.
OPSET = 17
IR_VERSION = 8
# Graphs smaller than this are MLP heads, run on one thread (a pool fighting over shared cores
# only slows them); bigger ones carry a network and take onnxruntime's default pool.
SMALL_GRAPH_BYTES = 1 << 20
FORMAT_VERSION = 1
# metadata_props keys of our own; every other key is a provenance entry (values are JSON).
NAME_KEY, CLASSES_KEY, FORMAT_KEY = "name", "classes", "faceid_head_format"


def heads_dir(settings: Settings | None = None) -> Path:
    """Where `faceid train-attributes` writes its models (faceid's cache): the trained set."""
    settings = settings or get_settings()
    return settings.model_cache_dir


def attribute_path(
    filename: str, settings: Settings | None = None, *, required: bool = True
) -> Path | None:
    """The attribute model file in force: the published one (registry: the model folder's
    attributes/, sha256 checked) or, with ``FACEID_ATTRIBUTE_MODELS=trained``, the one in
    :func:`heads_dir`. ``None`` when it is missing and not ``required``."""
    settings = settings or get_settings()
    if settings.models.attribute_models == "trained":
        path = heads_dir(settings) / filename
        legacy = path.with_suffix(LEGACY_SUFFIX)
        if not path.is_file() and legacy.is_file():
            convert_legacy_head(legacy, path)
        if path.is_file():
            return path
        if not required:
            return None
        raise ModelFileMissingError(
            f"attribute model {filename} not trained yet: {path} is missing; run "
            "`faceid train-attributes` to train it from the shared data, or unset "
            "FACEID_ATTRIBUTE_MODELS to use the published models",
            filename=path.name,
            looked=[str(path), str(legacy)],
        )
    try:
        return resolve_file(get_model(filename.removesuffix(".onnx")).files[0], settings)
    except ModelFileMissingError:
        if required:
            raise
        return None


@dataclass
class MlpWeights:
    """``softmax(relu(x @ w1 + b1) @ w2 + b2)``; ``w1`` is ``(dim, hidden)``."""

    w1: np.ndarray
    b1: np.ndarray
    w2: np.ndarray
    b2: np.ndarray

    def __post_init__(self) -> None:
        for name in ("w1", "b1", "w2", "b2"):
            setattr(self, name, np.asarray(getattr(self, name), dtype=np.float32))


@dataclass
class LinearWeights:
    """``softmax(x @ w + b)``; ``w`` is ``(dim, classes)``: an output layer on features."""

    w: np.ndarray
    b: np.ndarray

    def __post_init__(self) -> None:
        self.w = np.asarray(self.w, dtype=np.float32)
        self.b = np.asarray(self.b, dtype=np.float32)


def head_model(
    name: str,
    classes: tuple[str, ...],
    weights: MlpWeights | LinearWeights,
    meta: dict[str, object],
) -> bytes:
    """The serialized ONNX graph of a head (needs the ``onnx`` package; loading does not)."""

    if isinstance(weights, LinearWeights):
        keys, dim = ("w", "b"), weights.w.shape[0]
        nodes = [helper.make_node("Gemm", [INPUT_NAME, f"{name}_w", f"{name}_b"], ["logits"])]
    else:
        keys, dim = ("w1", "b1", "w2", "b2"), weights.w1.shape[0]
        nodes = [
            helper.make_node("Gemm", [INPUT_NAME, f"{name}_w1", f"{name}_b1"], ["hidden_pre"]),
            helper.make_node("Relu", ["hidden_pre"], ["hidden"]),
            helper.make_node("Gemm", ["hidden", f"{name}_w2", f"{name}_b2"], ["logits"]),
        ]
    nodes.append(helper.make_node("Softmax", ["logits"], [OUTPUT_NAME], axis=1))
    inits = [numpy_helper.from_array(getattr(weights, k), f"{name}_{k}") for k in keys]
    graph = helper.make_graph(
        nodes,
        f"faceid_attr_{name}",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["n", dim])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["n", len(classes)])],
        initializer=inits,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="faceid.attributes",
        producer_version=str(FORMAT_VERSION),
        doc_string=f"faceid {name} head: features -> class probabilities",
    )
    model.ir_version = IR_VERSION
    _stamp(model, name, classes, meta)
    onnx.checker.check_model(model)
    return model.SerializeToString()


def _stamp(model: Any, name: str, classes: tuple[str, ...], meta: dict[str, object]) -> None:
    reserved = {NAME_KEY, CLASSES_KEY, FORMAT_KEY} & set(meta)
    if reserved:
        raise ValueError(f"head metadata may not use the reserved keys {sorted(reserved)}")
    props = {NAME_KEY: name, CLASSES_KEY: list(classes), FORMAT_KEY: FORMAT_VERSION, **meta}
    del model.metadata_props[:]
    helper.set_model_props(model, {k: json.dumps(v) for k, v in props.items()})


def stamp(model: bytes, name: str, classes: tuple[str, ...], meta: dict[str, object]) -> bytes:
    """``model`` with ``name``, ``classes`` and ``meta`` as its metadata (needs ``onnx``)."""

    proto = onnx.load_from_string(model)
    _stamp(proto, name, classes, meta)
    return proto.SerializeToString()


def read_stamp(session: Any, path: Path) -> tuple[str, tuple[str, ...], dict[str, object]]:
    """What :func:`stamp` wrote, from an onnxruntime session of the file at ``path``."""
    props = dict(session.get_modelmeta().custom_metadata_map)
    try:
        meta = {k: json.loads(v) for k, v in props.items()}
        name, classes = str(meta.pop(NAME_KEY)), tuple(map(str, meta.pop(CLASSES_KEY)))
        meta.pop(FORMAT_KEY)
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(
            f"{path} is not a faceid attribute model (metadata {exc!r}); "
            "re-run `faceid train-attributes`"
        ) from exc
    return name, classes, meta


@dataclass
class Head:
    """One head as an onnxruntime session; :meth:`probabilities` runs it."""

    name: str
    classes: tuple[str, ...]
    model: bytes = field(repr=False)  # the serialized ONNX graph
    meta: dict[str, object] = field(default_factory=dict)
    device: str = "cpu"
    dim: int = field(init=False)
    _session: Any = field(init=False, repr=False, compare=False)
    session: InitVar[Any] = None  # one already built for ``model`` on ``device`` (by load)

    def __post_init__(self, session: Any) -> None:
        self._session = session or _session_for(self.model, self.device, f"the {self.name} head")
        self.dim = _check_graph(self._session, len(self.classes), self.name)

    @classmethod
    def from_weights(
        cls,
        name: str,
        classes: tuple[str, ...],
        weights: MlpWeights | LinearWeights,
        meta: dict[str, object] | None = None,
        device: str = "cpu",
    ) -> Head:
        meta = dict(meta or {})
        return cls(name, tuple(classes), head_model(name, classes, weights, meta), meta, device)

    @classmethod
    def load(cls, path: Path, device: str = "cpu") -> Head:
        """Read a head file; needs onnxruntime only."""
        model = path.read_bytes()
        session = _session_for(model, device, str(path))
        name, classes, meta = read_stamp(session, path)
        return cls(name, classes, model, meta, device, session)

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        """``(N, dim)`` inputs (embeddings or features) -> ``(N, classes)`` probabilities (rows
        sum to 1)."""
        x = np.ascontiguousarray(x, dtype=np.float32).reshape(-1, self.dim)
        if not len(x):
            return np.zeros((0, len(self.classes)), np.float32)
        return self._session.run([OUTPUT_NAME], {INPUT_NAME: x})[0]

    def save(self, path: Path) -> Path:
        """Write the graph with the current :attr:`meta` stamped into its metadata."""
        self.model = stamp(self.model, self.name, self.classes, self.meta)
        write_bytes_atomically(path, self.model)
        return path


def _session_for(model: bytes, device: str, what: str) -> Any:
    threads = 1 if len(model) < SMALL_GRAPH_BYTES else 0
    return ort_session(model, device, what, threads=threads)


def _check_graph(session: Any, n_classes: int, name: str) -> int:
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if [i.name for i in inputs] != [INPUT_NAME] or OUTPUT_NAME not in [o.name for o in outputs]:
        raise ModelError(f"the {name} head is not an `{INPUT_NAME} -> {OUTPUT_NAME}` graph")
    dim, k = inputs[0].shape[-1], next(o for o in outputs if o.name == OUTPUT_NAME).shape[-1]
    if not isinstance(dim, int) or k != n_classes:
        raise ModelError(
            f"the {name} head's graph {inputs[0].shape} -> [.., {k}] does not fit "
            f"its {n_classes} classes"
        )
    return dim


def convert_legacy_head(npz_path: Path, onnx_path: Path) -> Path:
    """Write the ``.onnx`` of a head saved as ``.npz`` before ONNX; the ``.npz`` is kept."""
    try:
        with np.load(npz_path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            name = str(meta.pop("name"))
            classes = tuple(str(c) for c in data["classes"])
            weights = MlpWeights(*(data[k] for k in ("w1", "b1", "w2", "b2")))
    except (OSError, KeyError, ValueError) as exc:
        raise ModelError(
            f"cannot convert the old head {npz_path} to ONNX ({exc}); "
            "re-run `faceid train-attributes`"
        ) from exc
    meta["converted_from"] = npz_path.name
    Head.from_weights(name, classes, weights, meta).save(onnx_path)
    log.info("converted attribute head %s to %s", npz_path, onnx_path)
    return onnx_path


def head_path(action: str, settings: Settings | None = None) -> Path:
    """The head's ``.onnx`` file in force (a trained one is converted from an old ``.npz``
    beside it when only that exists)."""
    path = attribute_path(HEAD_FILES[action], settings)
    assert path is not None
    return path


def load_head(action: str, settings: Settings | None = None) -> Head:
    settings = settings or get_settings()
    return Head.load(head_path(action, settings), settings.models.device)


@dataclass
class HeadInfo:
    """What ``faceid models`` shows for one head: its file, provenance and held-out metrics."""

    action: str
    path: Path
    present: bool
    classes: tuple[str, ...] = ()
    embedder: str | None = None
    provenance: dict[str, object] = field(default_factory=dict)
    metrics: object = None
    legacy_path: Path | None = None  # an old .npz, converted to ONNX on first load
    error: str | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "action": self.action,
            "file": str(self.path),
            "present": self.present,
            "classes": list(self.classes),
            "embedder": self.embedder,
            "provenance": self.provenance,
            "heldout_metrics": self.metrics,
            "legacy_file": str(self.legacy_path) if self.legacy_path else None,
            "error": self.error,
        }


def describe_heads(settings: Settings | None = None) -> list[HeadInfo]:
    """Each head's file, provenance and metrics, read from its ONNX metadata; converts nothing."""
    settings = settings or get_settings()
    out = []
    for action, filename in HEAD_FILES.items():
        if settings.models.attribute_models == "published":
            path = attribute_path(filename, settings, required=False) or Path(filename)
        else:
            path = heads_dir(settings) / filename
        legacy = path.with_suffix(LEGACY_SUFFIX)
        info = HeadInfo(
            action, path, path.is_file(), legacy_path=legacy if legacy.is_file() else None
        )
        if info.present:
            try:
                head = Head.load(path)
            except ModelError as exc:
                info.error = str(exc)
            else:
                info.classes, info.provenance = head.classes, dict(head.meta)
                info.metrics = info.provenance.pop("heldout_metrics", None)
                info.embedder = _str_or_none(head.meta.get("embedder"))
        out.append(info)
    return out


def _str_or_none(value: object) -> str | None:
    return None if value is None else str(value)


def probabilities_from_features(head: Head, features: np.ndarray) -> np.ndarray:
    """The head's answer on ``(N, views, dim)`` inputs, averaged over the views."""
    n, views, dim = features.shape
    p = head.probabilities(features.reshape(n * views, dim)).reshape(n, views, -1)
    return p.mean(axis=1).astype(np.float64)


def age_from_probabilities(p: np.ndarray) -> np.ndarray:
    return p @ np.arange(p.shape[1], dtype=np.float64)
