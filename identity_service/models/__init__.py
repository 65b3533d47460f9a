"""Model registry: which models exist, where their files come from, and how to get them."""

from .registry import MODELS, ModelFile, ModelSpec, get_model, locate, resolve_file

__all__ = ["MODELS", "ModelFile", "ModelSpec", "get_model", "locate", "resolve_file"]
