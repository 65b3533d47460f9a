"""The class names the attribute models answer with, in their output order.

Inference reads them here; the training data (``identity_service.training.attributes.data``)
labels its images with the same tuples.
"""

from __future__ import annotations

RACES = ("white", "black", "asian", "indian", "other")
GENDERS = ("male", "female")
# The FER model's class order (and that of the emotion head and CNN trained on FER2013).
EMOTIONS = ("angry", "disgust", "fearful", "happy", "neutral", "sad", "surprised")
