"""What the service hands back: matches, enrollment outcomes (value objects of
:mod:`identity_service.types`, which the HTTP client shares), and folder import reports."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..types import EnrollResult, ImageFailure, Match, Matches

__all__ = ["EnrollResult", "ImageFailure", "ImportReport", "Match", "Matches"]


@dataclass
class ImportReport:
    """Outcome of a folder import (``DIR/<identity>/*.jpg``)."""

    identities: int = 0
    images: int = 0
    faces_added: int = 0
    duplicates: int = 0
    multi_face_images: int = 0
    failures: list[ImageFailure] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, object]:
        return {
            "identities": self.identities,
            "images": self.images,
            "faces_added": self.faces_added,
            "duplicates": self.duplicates,
            "multi_face_images": self.multi_face_images,
            "failures": [f.__dict__ for f in self.failures],
            "seconds": round(self.seconds, 2),
        }
