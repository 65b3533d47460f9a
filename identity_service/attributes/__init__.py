"""Face attributes at run time: age, gender, race heads on face embeddings and the tuned
network; emotion from the FER model and the emotion CNN. Training them is
``identity_service.training.attributes`` (``faceid train-attributes``)."""

from .analyze import ACTIONS, Analysis, Attribute, analyze_image, analyze_images
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
    "analyze_image",
    "analyze_images",
    "describe_heads",
    "heads_dir",
    "load_head",
]
