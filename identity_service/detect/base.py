"""The detector interface: an RGB image in, detections (box, 5 landmarks, score) out."""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from ..types import Detection


class Detector(ABC):
    name: str

    @abstractmethod
    def detect(self, image: np.ndarray) -> list[Detection]:
        """Faces in ``image`` (RGB uint8), in no particular order."""


def order_faces(detections: list[Detection], image_shape: tuple[int, ...]) -> list[Detection]:
    """The documented face order: nearest the image centre first, ties by larger box.

    LFW-style photos put the face of interest at the centre, and for a portrait the
    central face is the subject, so index 0 is "the" face when one is needed.
    """
    cy, cx = image_shape[0] / 2.0, image_shape[1] / 2.0

    def key(det: Detection) -> tuple[float, float]:
        bx, by = det.box.center
        return ((bx - cx) ** 2 + (by - cy) ** 2, -det.box.area)

    return sorted(detections, key=key)
