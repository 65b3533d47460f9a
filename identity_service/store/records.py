"""Plain values the repository hands out and takes in; ORM objects never leave the store."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np

LogOp = Literal["add", "remove", "config", "identity"]


def aware(dt: datetime | None) -> datetime | None:
    """SQLite drops the time zone; every timestamp we store is UTC."""
    if dt is None or dt.tzinfo is not None:
        return dt
    return dt.replace(tzinfo=UTC)


@dataclass(frozen=True)
class CollectionRecord:
    id: int
    name: str
    tenant: str
    model: str
    model_version: str
    dim: int
    metric: str
    threshold: float | None
    created: datetime
    target_fpir: float | None = None

    @property
    def model_tag(self) -> str:
        """``name@version``, the tag every embedding in this collection must carry."""
        return f"{self.model}@{self.model_version}"


@dataclass(frozen=True)
class CollectionCounts:
    identities: int
    faces: int


@dataclass(frozen=True)
class IdentityRecord:
    id: int
    collection_id: int
    external_id: str
    name: str | None
    metadata: dict[str, Any]
    created: datetime
    deleted: bool = False


@dataclass(frozen=True)
class FaceRecord:
    id: int
    identity_id: int
    external_id: str
    image_sha256: str
    face_index: int
    box: list[float]
    landmarks: list[list[float]]
    det_score: float
    quality: float | None
    model: str
    name: str | None = None  # the identity's display name
    created: datetime | None = None


@dataclass(frozen=True)
class FaceOwner:
    """Whose face a face id is: all that ranking search results needs."""

    face_id: int
    identity_id: int
    external_id: str
    name: str | None


@dataclass
class NewFace:
    image_sha256: str
    face_index: int
    box: list[float]
    landmarks: list[list[float]]
    det_score: float
    quality: float | None
    embedding: np.ndarray  # (dim,) float32
    model: str  # "name@version" of the embedder

    @property
    def key(self) -> tuple[str, int]:
        return (self.image_sha256, self.face_index)


@dataclass(frozen=True)
class LogEntry:
    seq: int
    face_id: int
    op: LogOp
    # The vector for an 'add' whose face still exists; None for 'remove' and for an 'add'
    # whose face was deleted since (a later 'remove' for it follows in the log).
    embedding: np.ndarray | None
    # Who owns the face of an 'add' read with its embedding (a face never changes owner).
    identity_id: int | None = None


@dataclass(frozen=True)
class JobRecord:
    id: str
    kind: str
    status: str
    progress: float
    counts: dict[str, Any]
    errors: list[Any]
    params: dict[str, Any]
    created: datetime
    started: datetime | None = None
    finished: datetime | None = None


@dataclass(frozen=True)
class CalibrationRecord:
    id: int
    model: str
    dataset: str
    collection_id: int | None
    target_far: float
    threshold: float
    tar: float
    n_pairs: int
    report: dict[str, Any] = field(default_factory=dict)
    created: datetime | None = None


@dataclass
class OpenSetRecord:
    id: int
    collection_id: int
    model: str
    source: str
    gallery_faces: int
    gallery_identities: int
    n_searches: int
    report: dict[str, Any] = field(default_factory=dict)
    created: datetime | None = None


@dataclass(frozen=True)
class ApiKeyRecord:
    id: int
    key_hash: str
    tenant: str
    scopes: list[str]
    name: str | None
    created: datetime
    revoked: datetime | None = None

    @property
    def active(self) -> bool:
        return self.revoked is None
