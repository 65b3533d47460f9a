"""The ORM schema. Alembic migrations under ``migrations/`` must create exactly this.

Embeddings are stored as little-endian float32 bytes (``dim * 4`` bytes), not as JSON or
arrays: compact, portable across SQLite and Postgres, and cheap to turn back into numpy.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    UniqueConstraint,
    false,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# SQLite only autoincrements an INTEGER PRIMARY KEY, not a BIGINT one.
BigId = BigInteger().with_variant(Integer, "sqlite")

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


def _created() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), default=utcnow, server_default=func.now())


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Collection(Base):
    __tablename__ = "collections"
    __table_args__ = (UniqueConstraint("tenant", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    tenant: Mapped[str] = mapped_column(String(64), default="default", server_default="default")
    model: Mapped[str] = mapped_column(String(128))
    model_version: Mapped[str] = mapped_column(String(64))
    dim: Mapped[int] = mapped_column(Integer)
    metric: Mapped[str] = mapped_column(String(16), default="cosine", server_default="cosine")
    threshold: Mapped[float | None] = mapped_column(Float)
    # The false-positive identification rate find aims at; None means the settings' default.
    target_fpir: Mapped[float | None] = mapped_column(Float)
    created: Mapped[datetime] = _created()


class Identity(Base):
    __tablename__ = "identities"
    __table_args__ = (
        UniqueConstraint("collection_id", "external_id"),
        # Ids are handed to callers; a purged identity's id must not come back as another's.
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    collection_id: Mapped[int] = mapped_column(ForeignKey("collections.id", ondelete="CASCADE"))
    external_id: Mapped[str] = mapped_column(String(255))
    name: Mapped[str | None] = mapped_column(String(255))
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    created: Mapped[datetime] = _created()
    deleted: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class Face(Base):
    __tablename__ = "faces"
    __table_args__ = (
        UniqueConstraint("identity_id", "image_sha256", "face_index"),
        Index(None, "collection_id", "id"),
        # Face ids feed the FAISS index; never hand out a deleted face's id again.
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    identity_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("identities.id", ondelete="CASCADE")
    )
    collection_id: Mapped[int] = mapped_column(ForeignKey("collections.id", ondelete="CASCADE"))
    image_sha256: Mapped[str] = mapped_column(String(64))
    face_index: Mapped[int] = mapped_column(Integer)
    bbox: Mapped[list[Any]] = mapped_column(JSON)
    landmarks: Mapped[list[Any]] = mapped_column(JSON)
    det_score: Mapped[float] = mapped_column(Float)
    quality: Mapped[float | None] = mapped_column(Float)
    embedding: Mapped[bytes] = mapped_column(LargeBinary)
    model: Mapped[str] = mapped_column(String(200))
    created: Mapped[datetime] = _created()


class IndexLog(Base):
    """Append-only outbox: every face added to or removed from a collection, in order, and
    every change a query node caches: ``config`` (the collection's settings, name or a
    calibration changed; ``face_id`` 0) and ``identity`` (an identity's name, metadata or
    tombstone changed; ``face_id`` holds the identity id)."""

    __tablename__ = "index_log"
    __table_args__ = (
        CheckConstraint("op IN ('add', 'remove', 'config', 'identity')", name="op"),
        Index(None, "collection_id", "seq"),
        {"sqlite_autoincrement": True},
    )

    seq: Mapped[int] = mapped_column(BigId, primary_key=True)
    collection_id: Mapped[int] = mapped_column(ForeignKey("collections.id", ondelete="CASCADE"))
    # Not a foreign key: the log outlives the face (or identity) it mentions.
    face_id: Mapped[int] = mapped_column(BigInteger)
    op: Mapped[str] = mapped_column(String(8))
    created: Mapped[datetime] = _created()


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (Index(None, "status", "created"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="pending", server_default="pending")
    progress: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    counts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    errors: Mapped[list[Any]] = mapped_column(JSON, default=list)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created: Mapped[datetime] = _created()
    started: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Calibration(Base):
    __tablename__ = "calibrations"
    __table_args__ = (Index(None, "model", "dataset"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model: Mapped[str] = mapped_column(String(200))
    dataset: Mapped[str] = mapped_column(String(200))
    collection_id: Mapped[int | None] = mapped_column(
        ForeignKey("collections.id", ondelete="SET NULL")
    )
    target_far: Mapped[float] = mapped_column(Float)
    threshold: Mapped[float] = mapped_column(Float)
    tar: Mapped[float] = mapped_column(Float)
    n_pairs: Mapped[int] = mapped_column(Integer)
    report: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created: Mapped[datetime] = _created()


class OpenSetCalibration(Base):
    """find's operating point for a collection: the best non-mated similarities measured on its
    own gallery (or the model's prior), at the gallery size they were measured at."""

    __tablename__ = "open_set_calibrations"
    __table_args__ = (Index(None, "collection_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    collection_id: Mapped[int] = mapped_column(ForeignKey("collections.id", ondelete="CASCADE"))
    model: Mapped[str] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(String(64))
    gallery_faces: Mapped[int] = mapped_column(Integer)
    gallery_identities: Mapped[int] = mapped_column(Integer)
    n_searches: Mapped[int] = mapped_column(Integer)
    report: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created: Mapped[datetime] = _created()


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key_hash: Mapped[str] = mapped_column(String(128), unique=True)
    tenant: Mapped[str] = mapped_column(String(64), default="default", server_default="default")
    scopes: Mapped[list[Any]] = mapped_column(JSON, default=list)
    name: Mapped[str | None] = mapped_column(String(255))
    created: Mapped[datetime] = _created()
    revoked: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
