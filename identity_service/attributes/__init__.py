"""Face attributes: age, gender, race heads on face embeddings, and emotion (FER ONNX)."""

from .analyze import ACTIONS, Analysis, Attribute, analyze_image, analyze_images
from .heads import (
    HEAD_FILES,
    Head,
    HeadInfo,
    MlpWeights,
    describe_heads,
    heads_dir,
    load_head,
    train_head,
)

__all__ = [
    "ACTIONS",
    "HEAD_FILES",
    "Analysis",
    "Attribute",
    "Head",
    "HeadInfo",
    "MlpWeights",
    "analyze_image",
    "analyze_images",
    "describe_heads",
    "heads_dir",
    "load_head",
    "train_head",
]
