"""7-class facial expression: opencv_zoo's FER MobileFaceNet (int8 ONNX, Apache-2.0), plus a
head and a CNN trained on FER2013 when ``faceid train-attributes`` has made them.

The FER model takes a 1x3x112x112 RGB face aligned to the ArcFace 5-point template,
``(x/255 - 0.5) / 0.5``, and gives logits in :data:`EMOTIONS` order; it takes one face per call.
It was trained on other expression data and reads FER2013's 48x48 grey faces poorly (55 % on
the PublicTest split). The emotion head (``faceid-attr-emotion.onnx``) reads the model's
512-d penultimate features and its 7 logits, for the face and its mirror image, and averages
the two answers (62 % on the same split, measured in the README). Without the head, the FER
model's own classifier answers.

When ``faceid train-attributes`` has also trained the emotion CNN (``faceid-attr-emotion-cnn``,
:mod:`.emotion_cnn`) on FER2013's own grey faces, its answer (face and mirror averaged) is
averaged with the one above, with equal weight (68.5 % on PublicTest; the CNN alone 68.8 %).
"""

from __future__ import annotations

import numpy as np
import onnx

from ..align import arcface_crop
from ..config import Settings, get_settings
from ..errors import ModelError, ModelFileMissingError
from ..models import MODELS
from ..models.registry import resolve_file
from .emotion_cnn import CNN_DIM, grey_face
from .heads import Head, load_head, probabilities_from_features
from .labels import EMOTIONS
from .runtime import ort_session

# The FER graph's flattened 512-d penultimate activations (input of its last MatMul).
FEATURE_TENSOR = "481"
FEATURE_DIM = 512 + len(EMOTIONS)  # features, then logits


def _with_feature_output(path) -> bytes:
    model = onnx.load(str(path))
    model.graph.output.append(
        onnx.helper.make_tensor_value_info(FEATURE_TENSOR, onnx.TensorProto.FLOAT, None)
    )
    return model.SerializeToString()


class EmotionModel:
    def __init__(
        self,
        settings: Settings | None = None,
        head: Head | None = None,
        cnn: Head | None = None,
        *,
        load_trained: bool = True,
    ) -> None:
        """``head`` and ``cnn`` not given are loaded from the model cache when
        ``load_trained`` and trained there; without a head the FER model's classifier answers."""
        settings = settings or get_settings()
        path = resolve_file(MODELS["fer-mobilefacenet"].files[0], settings)
        self._session = ort_session(
            _with_feature_output(path), settings.models.device, f"FER model {path}"
        )
        self._input = self._session.get_inputs()[0].name
        if load_trained:
            head = head if head is not None else _optional("emotion", settings)
            cnn = cnn if cnn is not None else _optional("emotion-cnn", settings)
        self.head, self.cnn = head, cnn
        for what, model, dim in (("head", self.head, FEATURE_DIM), ("CNN", self.cnn, CNN_DIM)):
            if model is not None and model.dim != dim:
                raise ModelError(
                    f"the emotion {what} takes {model.dim} inputs, not {dim}; "
                    "re-run `faceid train-attributes --actions emotion`"
                )

    @property
    def source(self) -> str:
        parts = ["fer-mobilefacenet"]
        parts += ["faceid-attr-emotion"] if self.head else []
        parts += ["faceid-attr-emotion-cnn"] if self.cnn else []
        return "+".join(parts)

    @staticmethod
    def crop(image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        return arcface_crop(image, landmarks, 112)

    def features(self, crops: list[np.ndarray]) -> np.ndarray:
        """Aligned 112x112 RGB uint8 crops -> ``(N, 2, 519)``: [512 features, 7 logits] of each
        crop and of its mirror image."""
        out = np.zeros((len(crops), 2, FEATURE_DIM), np.float32)
        for i, crop in enumerate(crops):
            for view, image in enumerate((crop, crop[:, ::-1])):
                logits, feats = self._run(image)
                out[i, view] = np.concatenate([feats, logits])
        return out

    def _run(self, crop: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One crop through the FER model: its 7 logits and 512 penultimate features."""
        x = (crop.astype(np.float32) / 255.0 - 0.5) / 0.5
        logits, feats = self._session.run(
            None, {self._input: np.ascontiguousarray(x.transpose(2, 0, 1)[None])}
        )
        return logits.reshape(-1), feats.reshape(-1)

    def probabilities(self, crops: list[np.ndarray]) -> np.ndarray:
        """Aligned crops -> ``(N, 7)`` probabilities (rows sum to 1)."""
        if not crops:
            return np.zeros((0, len(EMOTIONS)), np.float64)
        if self.head is not None:
            fer = probabilities_from_features(self.head, self.features(crops))
        else:
            fer = np.zeros((len(crops), len(EMOTIONS)), np.float64)
            for i, crop in enumerate(crops):
                logits = self._run(crop)[0]
                z = logits.astype(np.float64) - logits.max()
                fer[i] = np.exp(z) / np.exp(z).sum()
        if self.cnn is None:
            return fer
        cnn = probabilities_from_faces(self.cnn, np.stack([grey_face(c) for c in crops]))
        return ensemble([fer, cnn])


def ensemble(members: list[np.ndarray]) -> np.ndarray:
    """Equal-weight average of the members' ``(N, 7)`` probabilities."""
    return np.mean(members, axis=0)


def _optional(action: str, settings: Settings) -> Head | None:
    try:
        return load_head(action, settings)
    except ModelFileMissingError:
        return None  # not trained: the model answers without it


def probabilities_from_faces(cnn: Head, faces: np.ndarray) -> np.ndarray:
    """The CNN's answer on ``(N, 48, 48)`` grey faces, averaged with their mirror images."""
    views = np.stack([faces, faces[:, :, ::-1]], axis=1).astype(np.float32)
    return probabilities_from_features(cnn, views.reshape(len(faces), 2, CNN_DIM))
