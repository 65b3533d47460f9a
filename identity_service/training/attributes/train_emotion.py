"""``faceid train-attributes --actions emotion``: the emotion head and CNN on FER2013.

FER2013's official Training split (``train/``) trains both; its PublicTest split
(``validation/``) gives the figures. The head reads the FER model's features (:mod:`.emotion`),
the CNN the 48x48 grey aligned face (:mod:`.emotion_cnn`); ``analyze`` averages the two, and
the figures are for that average, with each member's own accuracy beside it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...attributes.emotion import ensemble, probabilities_from_faces
from ...attributes.heads import HEAD_FILES, Head, heads_dir, probabilities_from_features
from ...models import MODELS
from .data import EMOTIONS, SEED
from .emotion_cnn import CnnRecipe, train_cnn
from .fer import fer_features, read_fer
from .fit import Recipe, train_head
from .train import accuracy_of, save_head

# Chosen by principle, not by the PublicTest figure: a regularised one-hidden-layer MLP (dropout,
# weight decay, label smoothing) over standardised features, 20 passes with a one-cycle rate.
EMOTION_RECIPE = Recipe(
    hidden=256,
    epochs=20,
    lr=2e-3,
    weight_decay=1e-2,
    batch_size=256,
    dropout=0.3,
    label_smoothing=0.1,
    standardize=True,
)
EMOTION_CNN_RECIPE = CnnRecipe()
LICENCE = "weights trained on FER2013 (research use); FER model Apache-2.0 (opencv_zoo)"
CNN_READS = "ArcFace-aligned face, grey 48x48"


@dataclass
class EmotionData:
    x: np.ndarray  # (N, 2, 519): FER-model features of each face and of its mirror
    faces: np.ndarray  # (N, 48, 48) uint8: the grey aligned face the CNN reads
    y: np.ndarray  # index into EMOTIONS
    test: np.ndarray  # bool: FER2013 PublicTest (validation/)
    how: list[str]

    def describe(self) -> dict[str, object]:
        return {
            "fer2013": {
                "images": len(self.y),
                "train": int((~self.test).sum()),
                "test": int(self.test.sum()),
                "split": "official: Training (train/) for training, PublicTest (validation/) "
                "for the figures",
                "no_face_detected": sum(h != "detected" for h in self.how),
            },
            "features": f"{MODELS['fer-mobilefacenet'].tag} penultimate (512) + logits (7), "
            f"face and mirror; for the CNN: {CNN_READS}, face and mirror",
        }


def load_emotion_data(
    pipeline, shared_dir: Path, cache_dir: Path, limit: int | None = None, progress=None
) -> EmotionData:
    fer_dir = shared_dir / "data" / "fer2013"
    items = read_fer(fer_dir, limit)
    rows = fer_features(pipeline, fer_dir, items, cache_dir, progress)
    ok = np.isfinite(rows.features).all(axis=(1, 2))
    return EmotionData(
        x=rows.features[ok],
        faces=rows.faces[ok],
        y=np.array([i.label for i in items])[ok],
        test=np.array([i.split == "validation" for i in items])[ok],
        how=[h for h, k in zip(rows.how, ok, strict=True) if k],
    )


def train_emotion_head(data: EmotionData, seed: int = SEED, recipe: Recipe = EMOTION_RECIPE):
    """Trained on both views of each training face (the mirror is the augmentation)."""
    train = ~data.test
    x = data.x[train].reshape(-1, data.x.shape[-1])
    y = np.repeat(data.y[train], data.x.shape[1])
    return train_head(x, y, EMOTIONS, "emotion", seed=seed, recipe=recipe)


def train_emotion_cnn(
    data: EmotionData,
    seed: int = SEED,
    recipe: CnnRecipe = EMOTION_CNN_RECIPE,
    progress: Callable[[int, float], None] | None = None,
) -> Head:
    train = ~data.test
    return train_cnn(
        data.faces[train], data.y[train], EMOTIONS, seed=seed, recipe=recipe, progress=progress
    )


def evaluate_emotion(head: Head, data: EmotionData, cnn: Head | None = None) -> dict[str, object]:
    """PublicTest figures of what ``analyze`` answers: the head, averaged with the CNN if any."""
    y = data.y[data.test]
    members = {"head": probabilities_from_features(head, data.x[data.test])}
    if cnn is not None:
        members["cnn"] = probabilities_from_faces(cnn, data.faces[data.test])
    pred = ensemble(list(members.values())).argmax(axis=1)
    recall = {
        EMOTIONS[k]: {"recall": float((pred[y == k] == k).mean()), "n": int((y == k).sum())}
        for k in range(len(EMOTIONS))
        if (y == k).any()
    }
    return {
        "fer2013_publictest": accuracy_of(pred, y),
        "per_class_recall": recall,
        "members": {k: accuracy_of(p.argmax(axis=1), y) for k, p in members.items()},
    }


def save_emotion_models(
    data: EmotionData, metrics: object, settings, head: Head, cnn: Head | None = None
) -> dict[str, Path]:
    paths = {
        "emotion": save_head(
            "emotion",
            head,
            MODELS["fer-mobilefacenet"].tag,
            data.describe(),
            LICENCE,
            metrics,
            settings,
        )
    }
    if cnn is not None:
        licence = "weights trained on FER2013 (research use)"
        paths["emotion-cnn"] = save_head(
            "emotion-cnn", cnn, CNN_READS, data.describe(), licence, metrics, settings
        )
    else:
        # an older CNN would join the head in analyze, unmeasured with it
        (heads_dir(settings) / HEAD_FILES["emotion-cnn"]).unlink(missing_ok=True)
    return paths
