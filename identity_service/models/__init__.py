"""Model registry: which models exist, where their files come from, and how to get them."""

from .registry import (
    MODELS,
    Archive,
    FaceInput,
    ModelFile,
    ModelSpec,
    get_model,
    locate,
    resolve_file,
)
from .thresholds import DefaultThreshold, default_threshold

__all__ = [
    "MODELS",
    "Archive",
    "DefaultThreshold",
    "FaceInput",
    "ModelFile",
    "ModelSpec",
    "default_threshold",
    "get_model",
    "locate",
    "resolve_file",
]
