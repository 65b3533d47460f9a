"""Request and response bodies (they make the OpenAPI document)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from ..service import ids
from ..service.ids import check_unicode
from ..store.metadata import check_metadata

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$"
B64 = "base64 image bytes (JPEG, PNG, ...), optionally as a data: URL"


def _is_unicode(value: str) -> bool:
    """False for a lone surrogate ("\\udfff" is a valid JSON escape): a Python string that no
    UTF-8 text, neither the database's nor a response's, can hold."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _no_nul(value: str) -> str:
    # Postgres text cannot hold NUL; refuse it here rather than fail in the database.
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    if not _is_unicode(value):
        raise ValueError("must be valid Unicode text (no lone surrogates such as \\udfff)")
    return value


def _shallow(metadata: dict[str, Any] | None) -> dict[str, Any] | None:
    """Refused here as well as in the store, so that a body is refused before any work."""
    return check_metadata(metadata)


Text = Annotated[str, AfterValidator(_no_nul)]
ExternalId = Annotated[
    str,
    # The rule is checked by ids.check_external_id (code invalid_id); the schema states it.
    Field(
        description="a person's id: 1-200 characters, no '/' or control characters, and not "
        "'.' or '..'",
        examples=["emp-0042"],
        json_schema_extra={"minLength": 1, "maxLength": ids.MAX_LENGTH, "pattern": ids.PATTERN},
    ),
    AfterValidator(check_unicode),
    AfterValidator(ids.check_external_id),
]
Metadata = Annotated[dict[str, Any] | None, AfterValidator(_shallow)]


class ErrorDetail(BaseModel):
    code: str = Field(examples=["unknown_collection"])
    message: str = Field(examples=["unknown collection 'staff' (tenant 'acme')"])
    details: dict[str, Any] | None = None


class ErrorOut(BaseModel):
    error: ErrorDetail


# -- collections and identities -----------------------------------------------------------------
class CollectionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=NAME_PATTERN, examples=["staff"])
    model: Text | None = Field(
        default=None, max_length=100, description="embedder name; default: the server's"
    )
    threshold: float | None = Field(
        default=None, gt=0, lt=2, description="cosine-distance threshold; default: the model's"
    )


class CollectionOut(BaseModel):
    name: str
    tenant: str
    model: str
    model_version: str
    dim: int
    metric: str
    threshold: float | None
    created: datetime
    identities: int | None = None
    faces: int | None = None


class CollectionPage(BaseModel):
    items: list[CollectionOut]
    offset: int
    limit: int
    total: int


class IdentityOut(BaseModel):
    external_id: str
    name: str | None
    metadata: dict[str, Any]
    created: datetime
    faces: int | None = None


class IdentityPage(BaseModel):
    items: list[IdentityOut]
    offset: int
    limit: int
    total: int


class IdentityUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Text | None = Field(default=None, max_length=200)
    metadata: Metadata = Field(default=None, examples=[{"team": "blue"}])
    merge: bool = Field(default=True, description="merge metadata keys instead of replacing")


class DeletedOut(BaseModel):
    deleted: bool = True
    faces_removed: int = 0


# -- enrollment and jobs ----------------------------------------------------------------------
class EnrollParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    external_id: ExternalId
    name: Text | None = Field(default=None, max_length=200, examples=["Ada Lovelace"])
    metadata: Metadata = None


class EnrollJSON(EnrollParams):
    images: list[str] = Field(min_length=1, description=f"one or more {B64}")


class FailureOut(BaseModel):
    image: str
    code: str
    message: str


class EnrollOut(BaseModel):
    external_id: str
    identity_id: int | None = Field(
        description="null when no face was enrolled and the person did not exist before"
    )
    face_ids: list[int]
    duplicates: int
    multi_face_images: int
    failures: list[FailureOut]


class EnrollJobCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: Text = Field(
        min_length=1,
        max_length=4096,
        description="a folder on the server, DIR/<person>/*.jpg, under one of the server's "
        "FACEID_API_SERVER_PATH_ROOTS (a relative path is taken under the first)",
    )
    batch_size: int = Field(default=32, ge=1, le=1000)
    limit: int | None = Field(default=None, ge=1)


class JobOut(BaseModel):
    id: str
    kind: str
    status: str = Field(examples=["running"])
    progress: float
    counts: dict[str, Any]
    errors: int
    params: dict[str, Any]
    created: datetime
    started: datetime | None
    finished: datetime | None
    seconds: float | None
    error_samples: list[Any] = Field(default_factory=list, description="the first errors")


# -- queries ----------------------------------------------------------------------------------
class FindParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    k: int = Field(default=5, ge=1, description="identities to return (at most the server max)")
    aggregate: Literal["max", "mean"] = "max"
    threshold: float | None = Field(
        default=None, gt=0, lt=2, description="a fixed cosine-distance threshold instead"
    )
    fpir: float | None = Field(
        default=None,
        gt=0,
        lt=1,
        description="the false-positive identification rate to aim at (default: the "
        "collection's target)",
    )


class FindJSON(FindParams):
    image: str | None = Field(default=None, description=f"{B64}; or send an embedding")
    embedding: list[float] | None = Field(
        default=None,
        min_length=1,
        max_length=4096,
        description="instead of an image: an embedding of the collection's model (from "
        "/v1/represent, or computed at the edge or on GPU workers)",
    )


class MatchOut(BaseModel):
    rank: int
    external_id: str
    name: str | None
    identity_id: int
    face_id: int
    similarity: float
    distance: float
    accepted: bool
    threshold: float


class OperatingPointOut(BaseModel):
    threshold: float = Field(description="accept a match at or under this cosine distance")
    target_fpir: float | None
    gallery_identities: int | None = Field(
        description="identities of the gallery the threshold was measured at"
    )
    source: str


class FindOut(BaseModel):
    collection: str
    matches: list[MatchOut]
    operating_point: OperatingPointOut
    timings_ms: dict[str, float]


class VerifyParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    collection: Text | None = Field(
        default=None,
        max_length=128,
        description="with identity: compare the image against that identity",
    )
    identity: Text | None = Field(
        default=None, max_length=255, description="external id in the collection"
    )


class VerifyJSON(VerifyParams):
    image1: str = Field(description=B64)
    image2: str | None = Field(default=None, description=f"{B64}; omit to verify an identity")


class FaceOut(BaseModel):
    index: int
    box: list[float]
    landmarks: list[list[float]]
    score: float
    model: str
    detector: str
    embedding: list[float] | None = None


class VerifyOut(BaseModel):
    verified: bool
    distance: float
    similarity: float
    threshold: float
    threshold_source: str
    model: str
    faces: list[FaceOut]
    identity: str | None = None
    timings_ms: dict[str, float]


class RepresentParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    max_faces: int | None = Field(default=None, ge=1, le=100)
    collection: Text | None = Field(
        default=None, max_length=128, description="embed with this collection's model"
    )


class RepresentJSON(RepresentParams):
    image: str = Field(description=B64)


class RepresentOut(BaseModel):
    model: str
    faces: list[FaceOut]


class HealthOut(BaseModel):
    status: str = Field(examples=["ok"])
    checks: dict[str, Any] = Field(default_factory=dict)
