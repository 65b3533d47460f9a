"""The domain layer: enroll, find, verify and delete, over storage, index and pipeline.

The names load on first use: importing a light submodule (:mod:`.results`) does not pull in
the database, the index and the models.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .facade import FaceService
    from .folder import import_folder, list_folder
    from .results import EnrollResult, ImageFailure, ImportReport, Match, Matches

_LAZY = {
    "EnrollResult": ".results",
    "FaceService": ".facade",
    "ImageFailure": ".results",
    "ImportReport": ".results",
    "Match": ".results",
    "Matches": ".results",
    "import_folder": ".folder",
    "list_folder": ".folder",
}

__all__ = [
    "EnrollResult",
    "FaceService",
    "ImageFailure",
    "ImportReport",
    "Match",
    "Matches",
    "import_folder",
    "list_folder",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
