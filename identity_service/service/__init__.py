"""The domain layer: enroll, find, verify and delete, over storage, index and pipeline."""

from .facade import FaceService
from .folder import import_folder, list_folder
from .results import EnrollResult, ImageFailure, ImportReport, Match

__all__ = [
    "EnrollResult",
    "FaceService",
    "ImageFailure",
    "ImportReport",
    "Match",
    "import_folder",
    "list_folder",
]
