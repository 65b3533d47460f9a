"""Age, gender, race and emotion per face, for :meth:`FacePipeline.analyze`.

Age, gender and race come from dlib's ResNet with its last stages fine-tuned for them
(:mod:`.tuned`, on the pipeline's own dlib chip) when ``faceid train-attributes`` has trained
it, else from small heads on the pipeline's face embedding; either must have been trained with
the pipeline's embedder. Emotion comes from the FER model and the emotion CNN on the
ArcFace-aligned crop (:mod:`.emotion`).

The pipeline comes in as a :class:`.source.FaceSource`: ``FacePipeline`` sits a layer above the
attribute models and hands itself to them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from ..detect import order_faces
from ..errors import (
    FaceIDError,
    InvalidParameterError,
    ModelFileMissingError,
    ModelMismatchError,
    NoFaceError,
)
from ..imaging import ImageInput, load_image
from ..types import Box, Detection, ExtractedFace
from .emotion import EmotionModel
from .heads import (
    HEAD_FILES,
    Head,
    age_from_probabilities,
    attribute_path,
    load_head,
    probabilities_from_features,
)
from .labels import EMOTIONS
from .source import FaceSource
from .tuned import AVERAGED_WITH_HEAD
from .tuned_features import FEATURES_FILE, FEATURES_READS, TunedFeatures, load_features

log = logging.getLogger(__name__)

ACTIONS = ("age", "gender", "emotion", "race")
# The embedder whose chip and embeddings the published attribute models read. analyze computes
# them whatever model a pipeline embeds with for find and verify.
ATTRIBUTE_EMBEDDER = "dlib-resnet-v1-tta8"
# Smaller images (e.g. 48x48 FER2013 faces) are upscaled before detection.
MIN_SIDE = 192
# Where the 5 landmarks sit in a pre-cropped face image, as fractions of width and height:
# the median over 284 faces detected in 300 random FER2013 *train* images. Used for an image
# taken whole as a face when no face is detected in it.
WHOLE_FACE_LANDMARKS = np.array(
    [[0.3118, 0.3854], [0.6814, 0.3845], [0.5, 0.5781], [0.349, 0.7708], [0.6589, 0.7635]],
    np.float32,
)


def whole_image_detection(width: int, height: int) -> Detection:
    return Detection(
        box=Box(0.0, 0.0, float(width), float(height)),
        landmarks=WHOLE_FACE_LANDMARKS * np.array([width, height], np.float32),
        score=0.0,
        detector="whole-image",
    )


@dataclass
class Attribute:
    value: Any  # a class name, or the age in years
    scores: dict[str, float]  # class -> probability (sums to 1); for age, per year 0..100

    def to_dict(self) -> dict[str, object]:
        return {"value": self.value, "scores": self.scores}


@dataclass
class Analysis:
    index: int
    box: Box
    detection_score: float
    face_source: str  # "detected" | "whole-image" (no face found; the image taken as the face)
    age: Attribute | None = None
    gender: Attribute | None = None
    emotion: Attribute | None = None
    race: Attribute | None = None
    extra: dict[str, object] = field(default_factory=dict)

    def to_dict(self, age_scores: bool = False) -> dict[str, object]:
        out: dict[str, object] = {
            "index": self.index,
            "box": self.box.to_list(),
            "detection_score": self.detection_score,
            "face_source": self.face_source,
        }
        for name in ACTIONS:
            attr = getattr(self, name)
            if attr is None:
                continue
            d = attr.to_dict()
            if name == "age" and not age_scores:
                d.pop("scores")
            out[name] = d
        return out


class AttributeModels:
    """The heads, the tuned network and the FER model, loaded once per pipeline."""

    def __init__(self, pipeline: FaceSource) -> None:
        self.pipeline = pipeline
        self.heads: dict[str, Head] = {}
        self.features: TunedFeatures | None = None
        self.emotion: EmotionModel | None = None
        self._warned = False  # about tuned heads without their features model

    def answerers(self, action: str) -> list[Head]:
        """What answers ``action`` (age, gender or race), their answers averaged: the tuned
        network when trained (with the embedding head for :data:`.tuned.AVERAGED_WITH_HEAD`),
        else the embedding head."""
        tuned = self.tuned(action)
        if tuned is None:
            return [self.head(action)]
        return [tuned, self.head(action)] if action in AVERAGED_WITH_HEAD else [tuned]

    def head(self, action: str) -> Head:
        return self._load(action)

    def tuned(self, action: str) -> Head | None:
        """The tuned network's output layer for ``action``; None where it is not trained."""
        name = f"{action}-tuned"
        if name in self.heads:
            return self.heads[name]  # checked against the features model when loaded
        if attribute_path(HEAD_FILES[name], self.pipeline.settings, required=False) is None:
            return None  # not trained: the embedding head answers
        try:
            features = self.tuned_features()
        except ModelFileMissingError:
            if not self._warned:
                log.warning(
                    "tuned heads without %s (from an older faceid, or the file was removed) "
                    "are not used; the embedding heads answer until `faceid train-attributes` "
                    "is run again",
                    FEATURES_FILE,
                )
                self._warned = True
            return None
        head = self._load(name)
        if head.meta.get("features_id") != features.id:
            del self.heads[name]  # so that asking again fails again
            raise ModelMismatchError(
                f"the {name} head was not exported with the tuned network in "
                f"{FEATURES_FILE}; re-run `faceid train-attributes`",
                head=name,
            )
        return head

    def tuned_features(self) -> TunedFeatures:
        if self.features is None:
            features = load_features(self.pipeline.settings)
            self._check_embedder("tuned network", features.meta)
            self.features = features
        return self.features

    def _load(self, name: str) -> Head:
        if name not in self.heads:
            head = load_head(name, self.pipeline.settings)
            self._check_embedder(f"{name} head", head.meta)
            self.heads[name] = head
        return self.heads[name]

    def _check_embedder(self, what: str, meta: dict[str, object]) -> None:
        trained_on = meta.get("embedder")
        if trained_on != self.pipeline.model:
            raise ModelMismatchError(
                f"the {what} was trained with {trained_on} but this pipeline embeds with "
                f"{self.pipeline.model}; use that embedder or retrain with "
                "`faceid train-attributes --embedder ...`",
                head=what,
                head_embedder=trained_on,
                pipeline_embedder=self.pipeline.model,
            )

    def emotion_model(self) -> EmotionModel:
        if self.emotion is None:
            self.emotion = EmotionModel(self.pipeline.settings)
        return self.emotion


def attribute_pipeline(pipeline: FaceSource) -> FaceSource:
    """``pipeline`` if it embeds with :data:`ATTRIBUTE_EMBEDDER`, else a sibling that does
    (same settings and workers, that embedder's detector), made once per pipeline."""
    if pipeline.embedder.name == ATTRIBUTE_EMBEDDER:
        return pipeline
    sibling = getattr(pipeline, "_attribute_pipeline", None)
    if sibling is None:
        sibling = pipeline.with_embedder(ATTRIBUTE_EMBEDDER)
        pipeline._attribute_pipeline = sibling  # type: ignore[attr-defined]
    return sibling


def models_for(pipeline: FaceSource) -> AttributeModels:
    models = getattr(pipeline, "_attribute_models", None)
    if models is None:
        models = AttributeModels(pipeline)
        pipeline._attribute_models = models  # type: ignore[attr-defined]
    return models


def upscaled(array: np.ndarray) -> np.ndarray:
    side = min(array.shape[:2])
    if side >= MIN_SIDE:
        return array
    scale = MIN_SIDE / side
    return cv2.resize(array, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)


def emotion_face(pipeline: FaceSource, image: ImageInput) -> tuple[np.ndarray, Detection, str]:
    """The upscaled image, its centre-most face (else the whole image) and how it was found:
    the face :func:`analyze_images` reads emotion from with ``on_no_face="whole-image"``."""
    array = upscaled(load_image(image))
    found = order_faces(pipeline.detector.detect(array), array.shape)[:1]
    if found:
        return array, found[0], "detected"
    return array, whole_image_detection(array.shape[1], array.shape[0]), "whole-image"


def _check_actions(actions: Sequence[str]) -> tuple[str, ...]:
    if isinstance(actions, str):
        actions = (actions,)
    bad = [a for a in actions if a not in ACTIONS]
    if bad or not actions:
        raise InvalidParameterError(
            f"unknown action(s) {bad}; choose from {', '.join(ACTIONS)}", parameter="actions"
        )
    return tuple(dict.fromkeys(actions))


def analyze_images(
    pipeline: FaceSource,
    images: Sequence[ImageInput],
    actions: Sequence[str] = ACTIONS,
    *,
    max_faces: int | None = None,
    on_no_face: str = "error",
) -> list[list[Analysis] | FaceIDError]:
    """Analyse many images; heads run as one batch. Each entry is its faces or its typed error.

    ``on_no_face="whole-image"`` takes an image without a detected face as the face itself
    (for pre-cropped faces such as FER2013's), with landmarks at :data:`WHOLE_FACE_LANDMARKS`.
    """
    pipeline = attribute_pipeline(pipeline)

    actions = _check_actions(actions)
    models = models_for(pipeline)
    members = {a: models.answerers(a) for a in actions if a != "emotion"}
    heads = {a: m[0] for a, m in members.items()}  # for the classes
    emotion = models.emotion_model() if "emotion" in actions else None

    found = [_faces_of(pipeline, image, max_faces, on_no_face) for image in images]
    ok = [f for f in found if not isinstance(f, FaceIDError)]
    probs = _face_probabilities(models, members, [faces for faces, _, _ in ok])
    emo = _emotion_probabilities(emotion, ok) if emotion is not None else None

    out: list[list[Analysis] | FaceIDError] = []
    pos = 0
    for entry in found:
        if isinstance(entry, FaceIDError):
            out.append(entry)
            continue
        faces, _, source = entry
        out.append([_analysis(f, source, heads, probs, emo, pos + i) for i, f in enumerate(faces)])
        pos += len(faces)
    return out


def _faces_of(
    pipeline: FaceSource, image: ImageInput, max_faces: int | None, on_no_face: str
) -> tuple[list[ExtractedFace], np.ndarray, str] | FaceIDError:
    """An image's faces, the upscaled image and how the faces were found; or its typed error."""
    try:
        array = upscaled(load_image(image))
        faces = pipeline.extract_faces(array, max_faces)
        if faces:
            return faces, array, "detected"
        if on_no_face != "whole-image":
            raise NoFaceError("no face found in the image")
        det = whole_image_detection(array.shape[1], array.shape[0])
        return [ExtractedFace(0, det, pipeline.embedder.crop(array, det))], array, "whole-image"
    except FaceIDError as exc:
        return exc


def _emotion_probabilities(
    emotion: EmotionModel, found: list[tuple[list[ExtractedFace], np.ndarray, str]]
) -> np.ndarray | None:
    """``(n_faces, emotions)`` over every face of ``found`` in order (None: no face)."""
    crops = [emotion.crop(array, f.detection.landmarks) for faces, array, _ in found for f in faces]
    return emotion.probabilities(crops) if crops else None


def _analysis(
    face: ExtractedFace,
    source: str,
    heads: dict[str, Head],
    probs: dict[str, np.ndarray],
    emo: np.ndarray | None,
    pos: int,
) -> Analysis:
    """The answer for one face, row ``pos`` of the batched probabilities."""
    a = Analysis(
        index=face.index,
        box=face.detection.box,
        detection_score=float(face.detection.score),
        face_source=source,
    )
    for action, head in heads.items():
        p = probs[action][pos]
        scores = {c: float(v) for c, v in zip(head.classes, p, strict=True)}
        if action == "age":
            value: Any = round(float(age_from_probabilities(p[None])[0]), 1)
        else:
            value = head.classes[int(np.argmax(p))]
        setattr(a, action, Attribute(value, scores))
    if emo is not None:
        p = emo[pos]
        a.emotion = Attribute(
            EMOTIONS[int(np.argmax(p))], {c: float(v) for c, v in zip(EMOTIONS, p, strict=True)}
        )
    return a


def _face_probabilities(
    models: AttributeModels, members: dict[str, list[Head]], faces: list[list[ExtractedFace]]
) -> dict[str, np.ndarray]:
    """Per action, ``(n_faces, classes)``, its members' answers averaged: tuned heads read the
    tuned network's features of the chips, the others embeddings; each computed only when a
    member needs it, and once for all members."""
    if not sum(len(f) for f in faces):
        return {}
    heads = [h for m in members.values() for h in m]
    vectors = features = None
    if any(h.meta.get("reads") != FEATURES_READS for h in heads):
        embedded = models.pipeline._embed_extracted(faces)
        vectors = np.stack([f.embedding for row in embedded for f in row])
    if any(h.meta.get("reads") == FEATURES_READS for h in heads):
        chips = np.stack([f.crop for row in faces for f in row])
        features = models.tuned_features().of(chips)

    def answer(head: Head) -> np.ndarray:
        if head.meta.get("reads") == FEATURES_READS:
            return probabilities_from_features(head, features)
        return head.probabilities(vectors).astype(np.float64)

    return {a: np.mean([answer(h) for h in m], axis=0) for a, m in members.items()}


def analyze_image(
    pipeline: FaceSource,
    image: ImageInput,
    actions: Sequence[str] = ACTIONS,
    *,
    max_faces: int | None = None,
    on_no_face: str = "error",
) -> list[Analysis]:
    result = analyze_images(pipeline, [image], actions, max_faces=max_faces, on_no_face=on_no_face)
    if isinstance(result[0], FaceIDError):
        raise result[0]
    return result[0]
