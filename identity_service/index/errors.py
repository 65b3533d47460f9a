"""Typed errors of the gallery index. They extend the project's hierarchy without editing it."""

from __future__ import annotations

from ..errors import FaceIDError, ModelError


class GalleryIndexError(FaceIDError, ValueError):
    """A bad argument to the index: wrong dimension or dtype, non-finite values, bad ids or k."""

    code = "index_error"
    http_status = 400


class CorruptSnapshotError(FaceIDError):
    """A snapshot file that cannot be trusted: truncated, bad checksum, wrong dimension."""

    code = "corrupt_snapshot"
    http_status = 500


class GpuUnavailableError(ModelError):
    """``gpu=True`` was configured but this faiss build has no GPU support or sees no GPU."""

    code = "gpu_unavailable"
    http_status = 503
