"""dlib's HOG detector with its 5- and 68-point shape predictors (offline default, CC0 models)."""

from __future__ import annotations

import threading

import dlib
import numpy as np

from ..align import shape_to_array
from ..config import Settings, get_settings
from ..models import get_model, resolve_file
from ..types import Box, Detection
from .base import Detector

# 68-point indices for the canonical 5 landmarks: eyes (mean of their 6 points), nose tip,
# mouth corners.
_LEFT_EYE = slice(36, 42)
_RIGHT_EYE = slice(42, 48)
_NOSE_TIP, _MOUTH_LEFT, _MOUTH_RIGHT = 30, 48, 54
# The second, upsampled pass looks for faces too small for the first (under ~80 px). Past this
# long side it would scan 4x the pixels of an already large image for faces that small.
UPSAMPLE_MAX_SIDE = 1024


class DlibHogDetector(Detector):
    """HOG + linear SVM. Runs at the image's scale first and upsamples once only when that
    finds nothing in an image of at most ``UPSAMPLE_MAX_SIDE`` pixels, so large faces cost one
    pass and small ones in small photos are still found."""

    name = "dlib-hog"

    def __init__(self, settings: Settings | None = None, upsample_retry: bool = True) -> None:
        settings = settings or get_settings()
        spec = get_model(self.name)
        files = {f.filename: resolve_file(f, settings) for f in spec.files}
        self._detector = dlib.get_frontal_face_detector()
        self._sp5 = dlib.shape_predictor(str(files["shape_predictor_5_face_landmarks.dat"]))
        self._sp68 = dlib.shape_predictor(str(files["shape_predictor_68_face_landmarks.dat"]))
        self._upsample_retry = upsample_retry
        self._min_face = settings.min_face_size
        self._lock = threading.Lock()  # dlib objects are not documented as thread-safe

    def detect(self, image: np.ndarray) -> list[Detection]:
        with self._lock:
            rects, scores, _ = self._detector.run(image, 0, 0.0)
            small = max(image.shape[:2]) <= UPSAMPLE_MAX_SIDE
            if not rects and self._upsample_retry and small:
                rects, scores, _ = self._detector.run(image, 1, 0.0)
            out = []
            for rect, score in zip(rects, scores, strict=True):
                rect = dlib.rectangle(rect.left(), rect.top(), rect.right(), rect.bottom())
                if min(rect.width(), rect.height()) < self._min_face:
                    continue
                shape5 = shape_to_array(self._sp5(image, rect))
                pts68 = shape_to_array(self._sp68(image, rect))
                landmarks = np.stack(
                    [
                        pts68[_LEFT_EYE].mean(axis=0),
                        pts68[_RIGHT_EYE].mean(axis=0),
                        pts68[_NOSE_TIP],
                        pts68[_MOUTH_LEFT],
                        pts68[_MOUTH_RIGHT],
                    ]
                ).astype(np.float32)
                out.append(
                    Detection(
                        box=Box(rect.left(), rect.top(), rect.right(), rect.bottom()),
                        landmarks=landmarks,
                        score=float(score),
                        detector=self.name,
                        dlib_shape=shape5,
                    )
                )
        return out
