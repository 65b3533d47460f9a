"""Face detectors, chosen by name; ``a+b`` is a cascade (b runs where a found nothing)."""

from __future__ import annotations

from ..config import Settings
from ..errors import UnknownModelError
from .base import Detector, order_faces
from .cascade import CascadeDetector

DETECTORS = ("dlib-hog", "yunet")


def _create_one(name: str, settings: Settings | None) -> Detector:
    if name == "dlib-hog":
        from .dlib_hog import DlibHogDetector

        return DlibHogDetector(settings)
    if name == "yunet":
        from .yunet import YuNetDetector

        return YuNetDetector(settings)
    raise UnknownModelError(
        f"unknown detector {name!r}; choose one of {', '.join(DETECTORS)} or a cascade "
        "such as dlib-hog+yunet",
        model=name,
    )


def create_detector(name: str, settings: Settings | None = None) -> Detector:
    parts = [p.strip() for p in name.split("+")]
    if len(parts) == 1:
        return _create_one(parts[0], settings)
    return CascadeDetector([_create_one(p, settings) for p in parts])


__all__ = ["DETECTORS", "CascadeDetector", "Detector", "create_detector", "order_faces"]
