"""Face attributes: age, gender, race heads on face embeddings; emotion from the FER model."""

from .analyze import ACTIONS, Analysis, Attribute, analyze_image, analyze_images
from .fit import Recipe, train_head
from .heads import (
    HEAD_FILES,
    Head,
    HeadInfo,
    MlpWeights,
    describe_heads,
    heads_dir,
    load_head,
)

__all__ = [
    "ACTIONS",
    "HEAD_FILES",
    "Analysis",
    "Attribute",
    "Head",
    "HeadInfo",
    "MlpWeights",
    "Recipe",
    "analyze_image",
    "analyze_images",
    "describe_heads",
    "heads_dir",
    "load_head",
    "train_head",
]
