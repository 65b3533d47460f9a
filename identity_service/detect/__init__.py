"""Face detectors, chosen by name; ``a+b`` is a cascade (b runs where a found nothing)."""

from __future__ import annotations

from ..config import Settings, get_settings
from ..errors import UnknownModelError
from .base import Detector, order_faces
from .bounded import BoundedDetector
from .cascade import CascadeDetector
from .dlib_hog import DlibHogDetector
from .yunet import YuNetDetector

DETECTORS = ("dlib-hog", "yunet")


def _create_one(name: str, settings: Settings | None) -> Detector:
    if name == "dlib-hog":
        return DlibHogDetector(settings)
    if name == "yunet":
        return YuNetDetector(settings)
    raise UnknownModelError(
        f"unknown detector {name!r}; choose one of {', '.join(DETECTORS)} or a cascade "
        "such as dlib-hog+yunet",
        model=name,
    )


def create_detector(name: str, settings: Settings | None = None) -> Detector:
    """The named detector (``a+b``: a cascade), run on images shrunk to
    ``FACEID_DETECT_MAX_SIDE`` pixels on their long side (0: full size)."""
    parts = [p.strip() for p in name.split("+")]
    detector = (
        _create_one(parts[0], settings)
        if len(parts) == 1
        else CascadeDetector([_create_one(p, settings) for p in parts])
    )
    max_side = (settings or get_settings()).detect_max_side
    return BoundedDetector(detector, max_side) if max_side else detector


__all__ = [
    "DETECTORS",
    "BoundedDetector",
    "CascadeDetector",
    "Detector",
    "create_detector",
    "order_faces",
]
