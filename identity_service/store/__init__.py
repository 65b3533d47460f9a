"""Storage: SQLAlchemy models, migrations and the repository the rest of faceid goes through."""

from .db import make_engine, session_factory
from .migrate import check_schema, current_revision, downgrade, head_revision, upgrade
from .records import (
    ApiKeyRecord,
    CalibrationRecord,
    CollectionCounts,
    CollectionRecord,
    FaceOwner,
    FaceRecord,
    IdentityRecord,
    JobRecord,
    LogEntry,
    NewFace,
    OpenSetRecord,
)
from .repository import Repository

__all__ = [
    "ApiKeyRecord",
    "CalibrationRecord",
    "CollectionCounts",
    "CollectionRecord",
    "FaceOwner",
    "FaceRecord",
    "IdentityRecord",
    "JobRecord",
    "LogEntry",
    "NewFace",
    "OpenSetRecord",
    "Repository",
    "check_schema",
    "current_revision",
    "downgrade",
    "head_revision",
    "make_engine",
    "session_factory",
    "upgrade",
]
