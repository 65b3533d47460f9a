"""Detection on a bounded working size: a large photo is shrunk so its long side is at most
``max_side`` pixels, the detector runs on that, and the faces are mapped back to the photo.

Detection cost grows with the pixels it scans (HOG and YuNet both scan the whole frame, and a
frame with no face makes HOG scan it again upsampled), so one accepted image could hold a
worker for half a minute and gigabytes. Crops and embeddings are still cut from the full-size
photo, so a face large enough to find at the working size loses nothing.
"""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np

from ..types import Box, Detection
from .base import Detector


def scaled(detection: Detection, factor: float) -> Detection:
    box = detection.box
    shape = detection.dlib_shape
    return replace(
        detection,
        box=Box(box.x1 * factor, box.y1 * factor, box.x2 * factor, box.y2 * factor),
        landmarks=(detection.landmarks * factor).astype(np.float32),
        dlib_shape=None if shape is None else (shape * factor).astype(np.float32),
    )


class BoundedDetector(Detector):
    def __init__(self, inner: Detector, max_side: int) -> None:
        if max_side < 64:
            raise ValueError(f"a working size under 64 pixels finds no face, got {max_side}")
        self.inner = inner
        self.max_side = max_side
        self.name = inner.name

    def detect(self, image: np.ndarray) -> list[Detection]:
        height, width = image.shape[:2]
        scale = self.max_side / max(height, width)
        if scale >= 1.0:
            return self.inner.detect(image)
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        return [scaled(d, 1.0 / scale) for d in self.inner.detect(small)]
