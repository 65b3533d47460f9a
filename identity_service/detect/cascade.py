"""Several detectors as one: every stage runs, and a later stage's face is kept only where no
earlier stage already found one (IoU below ``overlap``).

The default pairs dlib's HOG (whose boxes dlib's 5-point shape model and ResNet chip were made
for) with YuNet, a CNN that finds the faces HOG misses: turned heads, low contrast, partial
occlusion. On the 5,367 LFW images of the shared pairs HOG finds no face in 17 and misses the
central face in 3 more; YuNet finds all 20. YuNet costs about 3 ms an image on one core.
"""

from __future__ import annotations

import numpy as np

from ..types import Box, Detection
from .base import Detector


def iou(a: Box, b: Box) -> float:
    w = min(a.x2, b.x2) - max(a.x1, b.x1)
    h = min(a.y2, b.y2) - max(a.y1, b.y1)
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    return inter / (a.area + b.area - inter)


class CascadeDetector(Detector):
    def __init__(self, stages: list[Detector], overlap: float = 0.3) -> None:
        if not stages:
            raise ValueError("a cascade needs at least one detector")
        self.stages = stages
        self.overlap = overlap
        self.name = "+".join(d.name for d in stages)

    def detect(self, image: np.ndarray) -> list[Detection]:
        found: list[Detection] = []
        for stage in self.stages:
            for det in stage.detect(image):
                if all(iou(det.box, kept.box) < self.overlap for kept in found):
                    found.append(det)
        return found
