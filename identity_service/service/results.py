"""What the service hands back: matches, enrollment outcomes, import reports."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..types import OperatingPoint


@dataclass(frozen=True)
class Match:
    """One candidate identity for a probe, best first. ``accepted`` is the open-set decision."""

    rank: int
    external_id: str
    name: str | None
    identity_id: int
    face_id: int  # the gallery face that matched best
    similarity: float  # cosine similarity (aggregated per identity)
    distance: float  # 1 - similarity
    accepted: bool
    threshold: float

    def to_dict(self) -> dict[str, object]:
        return {
            "rank": self.rank,
            "external_id": self.external_id,
            "name": self.name,
            "identity_id": self.identity_id,
            "face_id": self.face_id,
            "similarity": round(self.similarity, 6),
            "distance": round(self.distance, 6),
            "accepted": self.accepted,
            "threshold": self.threshold,
        }


class Matches(list[Match]):
    """``find``'s answer for one probe: its ranked matches (a list) and the operating point
    that decided ``accepted``."""

    def __init__(self, matches: list[Match], operating_point: OperatingPoint) -> None:
        super().__init__(matches)
        self.operating_point = operating_point

    @property
    def accepted(self) -> Match | None:
        """The identity ``find`` names, or None: unknown."""
        return self[0] if self and self[0].accepted else None

    def to_dict(self) -> dict[str, object]:
        return {
            "matches": [m.to_dict() for m in self],
            "operating_point": self.operating_point.to_dict(),
        }


@dataclass(frozen=True)
class ImageFailure:
    image: str
    code: str
    message: str


@dataclass
class EnrollResult:
    """Outcome of enrolling some images of one identity. Nothing is dropped silently: every
    image is either enrolled, a duplicate of a stored one, or listed in ``failures``."""

    external_id: str
    identity_id: int | None  # None: no face was enrolled and the person did not exist before
    face_ids: list[int] = field(default_factory=list)
    duplicates: int = 0
    multi_face_images: int = 0  # images with several faces: the centre-most was enrolled
    failures: list[ImageFailure] = field(default_factory=list)


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
