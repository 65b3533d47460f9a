"""The value objects every layer passes around: a box, a detection, a face, a verification,
and what ``find`` and ``enroll`` answer (matches, enrollment outcomes), which the HTTP client
builds from the API's JSON too."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# Canonical landmark order (image coordinates, as the ArcFace template uses it):
# image-left eye, image-right eye, nose tip, image-left mouth corner, image-right mouth corner.
LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
# The tenant of everything made without one (the embedded default, a server without auth).
DEFAULT_TENANT = "default"


@dataclass(frozen=True)
class Box:
    x1: float
    y1: float
    x2: float
    y2: float

    @property
    def width(self) -> float:
        return self.x2 - self.x1

    @property
    def height(self) -> float:
        return self.y2 - self.y1

    @property
    def area(self) -> float:
        return max(self.width, 0.0) * max(self.height, 0.0)

    @property
    def center(self) -> tuple[float, float]:
        return ((self.x1 + self.x2) / 2, (self.y1 + self.y2) / 2)

    def to_list(self) -> list[float]:
        return [round(self.x1, 2), round(self.y1, 2), round(self.x2, 2), round(self.y2, 2)]


@dataclass
class Detection:
    """One face found by a detector."""

    box: Box
    landmarks: np.ndarray  # (5, 2) float32 in LANDMARK_NAMES order
    score: float
    detector: str
    # dlib's own 5-point shape (4 eye corners + nose base), which the dlib ResNet's
    # face chip is defined on. Filled by the dlib detector, computed lazily otherwise.
    dlib_shape: np.ndarray | None = None


@dataclass
class ExtractedFace:
    """A detected face cut out for an embedder, not yet embedded."""

    index: int
    detection: Detection
    crop: np.ndarray  # aligned for the pipeline's embedder


@dataclass
class Face:
    """A detected face with its embedding. ``index`` is its rank in the image's face order."""

    index: int
    box: Box
    landmarks: np.ndarray
    score: float
    embedding: np.ndarray  # (dim,) float32, L2-normalised
    model: str  # "name@version" of the embedder
    detector: str

    def to_dict(self, with_embedding: bool = True) -> dict[str, object]:
        out: dict[str, object] = {
            "index": self.index,
            "box": self.box.to_list(),
            "landmarks": np.round(self.landmarks, 2).tolist(),
            "score": round(float(self.score), 4),
            "model": self.model,
            "detector": self.detector,
        }
        if with_embedding:
            out["embedding"] = [float(v) for v in self.embedding]
        return out


@dataclass
class Verification:
    verified: bool
    distance: float  # cosine distance, 1 - cosine similarity
    threshold: float
    model: str
    similarity: float
    faces: tuple[Face, Face]
    timings_ms: dict[str, float] = field(default_factory=dict)
    threshold_source: str = ""
    # Calibrated P(same person | distance) when a calibration with a fitted curve is in force.
    confidence: float | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "verified": self.verified,
            "distance": round(self.distance, 6),
            "similarity": round(self.similarity, 6),
            "threshold": self.threshold,
            "threshold_source": self.threshold_source,
            "confidence": None if self.confidence is None else round(self.confidence, 6),
            "model": self.model,
            "faces": [f.to_dict(with_embedding=False) for f in self.faces],
            "timings_ms": {k: round(v, 2) for k, v in self.timings_ms.items()},
        }


@dataclass(frozen=True)
class OperatingPoint:
    """The decision ``find`` applies: accept a match at or under ``threshold`` (cosine
    distance), aiming at ``target_fpir`` for a gallery of ``gallery_identities``."""

    threshold: float
    target_fpir: float | None
    gallery_identities: int | None
    source: str

    def to_dict(self) -> dict[str, object]:
        return {
            "threshold": self.threshold,
            "target_fpir": self.target_fpir,
            "gallery_identities": self.gallery_identities,
            "source": self.source,
        }


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
