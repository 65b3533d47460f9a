"""7-class facial expression with opencv_zoo's FER MobileFaceNet (int8 ONNX, Apache-2.0).

Input: 1x3x112x112 RGB face aligned to the ArcFace 5-point template, ``(x/255 - 0.5) / 0.5``;
output logits in :data:`EMOTIONS` order. The model takes one face per call (batch 1).
"""

from __future__ import annotations

import numpy as np

from ..align import arcface_crop
from ..config import Settings, get_settings
from ..models import MODELS
from ..models.registry import resolve_file
from .data import EMOTIONS
from .runtime import ort_session


class EmotionModel:
    def __init__(self, settings: Settings | None = None) -> None:
        settings = settings or get_settings()
        path = resolve_file(MODELS["fer-mobilefacenet"].files[0], settings)
        self._session = ort_session(path, settings.device, f"FER model {path}")
        self._input = self._session.get_inputs()[0].name

    @staticmethod
    def crop(image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        return arcface_crop(image, landmarks, 112)

    def probabilities(self, crops: list[np.ndarray]) -> np.ndarray:
        """Aligned 112x112 RGB uint8 crops -> ``(N, 7)`` softmax probabilities."""
        out = np.zeros((len(crops), len(EMOTIONS)), np.float64)
        for i, crop in enumerate(crops):
            x = (crop.astype(np.float32) / 255.0 - 0.5) / 0.5
            logits = self._session.run(None, {self._input: x.transpose(2, 0, 1)[None]})[0][0]
            z = logits.astype(np.float64) - logits.max()
            out[i] = np.exp(z) / np.exp(z).sum()
        return out
