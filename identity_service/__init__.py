"""faceid: face identification backend on real models."""

from .config import Settings, get_settings
from .errors import FaceIDError
from .pipeline import FacePipeline
from .service import FaceService, Match
from .types import Box, Detection, Face, Verification

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
