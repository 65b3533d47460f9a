"""YuNet (opencv_zoo, MIT): a small CNN detector with 5 landmarks, run by cv2.FaceDetectorYN."""

from __future__ import annotations

import threading

import cv2
import numpy as np

from ..config import Settings, get_settings
from ..models import get_model, resolve_file
from ..types import Box, Detection
from .base import Detector


class YuNetDetector(Detector):
    name = "yunet"

    def __init__(
        self,
        settings: Settings | None = None,
        score_threshold: float = 0.7,
        nms_threshold: float = 0.3,
    ) -> None:
        settings = settings or get_settings()
        # OpenCV's DNN engine warns on stderr about target selection on every create.
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
        model = resolve_file(get_model(self.name).files[0], settings)
        self._net = cv2.FaceDetectorYN.create(
            str(model), "", (320, 320), score_threshold, nms_threshold, 5000
        )
        self._min_face = settings.min_face_size
        self._lock = threading.Lock()

    def detect(self, image: np.ndarray) -> list[Detection]:
        height, width = image.shape[:2]
        bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
        with self._lock:
            self._net.setInputSize((width, height))
            _, rows = self._net.detect(bgr)
        out: list[Detection] = []
        for row in [] if rows is None else rows:
            x, y, w, h = (float(v) for v in row[:4])
            if min(w, h) < self._min_face:
                continue
            # YuNet's order (subject's right eye, left eye, nose, right/left mouth corner)
            # is image-left to image-right, the canonical order.
            landmarks = np.asarray(row[4:14], dtype=np.float32).reshape(5, 2)
            out.append(
                Detection(
                    box=Box(max(x, 0.0), max(y, 0.0), min(x + w, width), min(y + h, height)),
                    landmarks=landmarks,
                    score=float(row[14]),
                    detector=self.name,
                )
            )
        return out
