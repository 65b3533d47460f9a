"""faceid: face identification backend on real models.

The names below load on first use, so that ``import identity_service.client`` (and other
light subpackages) does not pull in OpenCV, dlib, FAISS or the database layer.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .config import Settings, get_settings
    from .errors import FaceIDError
    from .pipeline import FacePipeline
    from .service import FaceService, Match
    from .types import Box, Detection, Face, Verification

# name -> the submodule that defines it
_LAZY = {
    "Box": ".types",
    "Detection": ".types",
    "Face": ".types",
    "FaceIDError": ".errors",
    "FacePipeline": ".pipeline",
    "FaceService": ".service",
    "Match": ".service",
    "Settings": ".config",
    "Verification": ".types",
    "get_settings": ".config",
}

__all__ = [
    "Box",
    "Detection",
    "Face",
    "FaceIDError",
    "FacePipeline",
    "FaceService",
    "Match",
    "Settings",
    "Verification",
    "get_settings",
]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # later lookups skip this hook
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
