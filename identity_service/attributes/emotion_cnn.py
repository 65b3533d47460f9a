"""What the emotion CNN (``faceid-attr-emotion-cnn.onnx``) reads: the ArcFace-aligned crop the
FER model reads, made grey and 48x48, flattened to 2,304 values in 0..255. It runs as any other
:class:`~.heads.Head`; :class:`~.emotion.EmotionModel` averages its answer with the FER model's.
``identity_service.training.attributes.emotion_cnn`` trains and exports it (torch).
"""

from __future__ import annotations

import cv2
import numpy as np

CNN_SIDE = 48
CNN_DIM = CNN_SIDE * CNN_SIDE


def grey_face(crop: np.ndarray) -> np.ndarray:
    """An aligned RGB uint8 crop -> the ``(48, 48)`` uint8 grey face the CNN reads."""
    grey = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)
    return cv2.resize(grey, (CNN_SIDE, CNN_SIDE), interpolation=cv2.INTER_AREA)
