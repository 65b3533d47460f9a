"""dlib's ResNet-29 face descriptor (CC0): 150x150 face chips from its 5-point shape, 128-d."""

from __future__ import annotations

import threading

import dlib
import numpy as np

from ..align import dlib_chip, shape_to_array
from ..config import Settings, get_settings
from ..models import get_model, resolve_file
from ..types import Detection
from .base import Embedder


class DlibResNetEmbedder(Embedder):
    name = "dlib-resnet-v1"
    version = "1"
    dim = 128

    def __init__(self, settings: Settings | None = None) -> None:
        settings = settings or get_settings()
        files = {f.filename: resolve_file(f, settings) for f in get_model(self.name).files}
        self._net = dlib.face_recognition_model_v1(
            str(files["dlib_face_recognition_resnet_model_v1.dat"])
        )
        self._sp5 = dlib.shape_predictor(str(files["shape_predictor_5_face_landmarks.dat"]))
        self._lock = threading.Lock()

    def crop(self, image: np.ndarray, detection: Detection) -> np.ndarray:
        box = (detection.box.x1, detection.box.y1, detection.box.x2, detection.box.y2)
        shape = detection.dlib_shape
        if shape is None:
            # Faces from another detector: fit dlib's own 5 points inside their box.
            import dlib

            rect = dlib.rectangle(*(round(v) for v in box))
            with self._lock:
                shape = shape_to_array(self._sp5(image, rect))
            detection.dlib_shape = shape
        return dlib_chip(image, box, shape)

    def _forward(self, crops: list[np.ndarray]) -> np.ndarray:
        batch = [np.ascontiguousarray(c, dtype=np.uint8) for c in crops]
        with self._lock:
            out = self._net.compute_face_descriptor(batch)
        return np.asarray([np.asarray(v, dtype=np.float32) for v in out])
