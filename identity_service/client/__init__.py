"""Typed Python client of the faceid HTTP API.

>>> with FaceIDClient("http://127.0.0.1:8000", api_key="fid_...") as client:
...     client.enroll("staff", "emp-42", ["a.jpg", "b.jpg"], name="Ada")
...     matches = client.find("staff", "probe.jpg", k=3)

``AsyncFaceIDClient`` has the same methods as coroutines (``async with``, ``await``); its
jobs wait with ``await job.wait_async()``.

Errors raise the class of their code (``identity_service.errors`` and
``identity_service.api.errors``), e.g. ``UnknownCollectionError``, ``NoFaceError``,
``AuthenticationError``.
"""

from ..api.errors import (
    AuthenticationError,
    LimitExceededError,
    PayloadTooLargeError,
    PermissionDeniedError,
    ServiceUnavailableError,
    ValidationError,
)
from .core import (
    ApiError,
    AsyncFaceIDClient,
    ClientImage,
    FaceIDClient,
    image_part,
    raise_for_error,
)
from .models import (
    Analysis,
    Collection,
    EnrollResult,
    FaceInfo,
    Identity,
    ImageFailure,
    Job,
    Match,
    Page,
    Verification,
)

__all__ = [
    "Analysis",
    "ApiError",
    "AsyncFaceIDClient",
    "AuthenticationError",
    "ClientImage",
    "Collection",
    "EnrollResult",
    "FaceIDClient",
    "FaceInfo",
    "Identity",
    "ImageFailure",
    "Job",
    "LimitExceededError",
    "Match",
    "Page",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "ServiceUnavailableError",
    "ValidationError",
    "Verification",
    "image_part",
    "raise_for_error",
]
