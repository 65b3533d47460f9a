"""``faceid train-attributes``: train the attribute heads on shared data.

Data (under ``<shared>/data``): UTKFace (age, gender, race; 80/20 split by file, seeded, since
UTKFace has no identity labels), LFW ``gender.csv`` (gender; 80/20 split by person) and FER2013
(emotion, in :mod:`.train_emotion`). Heads are trained on the train sides only; the figures
printed are on the held-out sides.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ...attributes.heads import AGE_BINS, HEAD_FILES, Head, age_from_probabilities, heads_dir
from ...calibration.metrics import accuracy_interval
from .data import (
    GENDERS,
    RACES,
    SEED,
    embed_folder,
    is_test,
    person_of,
    read_lfw_gender,
    read_utkface,
)
from .fit import train_head

AGE_BANDS = ((0, 9), (10, 19), (20, 39), (40, 59), (60, 200))


@dataclass
class AttributeData:
    utk_x: np.ndarray
    utk_age: np.ndarray
    utk_gender: np.ndarray
    utk_race: np.ndarray
    utk_test: np.ndarray  # bool
    utk_how: list[str]
    lfw_x: np.ndarray
    lfw_gender: np.ndarray
    lfw_test: np.ndarray
    lfw_people: int
    embedder: str
    seed: int
    utk_files: list[str]  # under utkface/, one per row
    lfw_files: list[str]  # under lfw/images/, one per row

    def describe(self) -> dict[str, object]:
        return {
            "embedder": self.embedder,
            "split_seed": self.seed,
            "utkface": {
                "images": len(self.utk_age),
                "train": int((~self.utk_test).sum()),
                "test": int(self.utk_test.sum()),
                "split": "80/20 by file (UTKFace has no identity labels)",
                "no_face_detected": sum(h != "detected" for h in self.utk_how),
            },
            "lfw_gender": {
                "images": len(self.lfw_gender),
                "people": self.lfw_people,
                "train": int((~self.lfw_test).sum()),
                "test": int(self.lfw_test.sum()),
                "split": "80/20 by person (people-disjoint)",
            },
        }


def load_data(
    pipeline, shared_dir: Path, cache_dir: Path, seed: int = SEED, progress: Callable | None = None
) -> AttributeData:
    utk_dir = shared_dir / "data" / "utkface"
    items = read_utkface(utk_dir)
    utk_x, utk_how = embed_folder(
        pipeline, "utkface", utk_dir, [i.relpath for i in items], cache_dir, progress
    )
    lfw_dir = shared_dir / "data" / "lfw"
    lfw = read_lfw_gender(lfw_dir)
    # "lfw-all": the cache `faceid` already keeps for every LFW image with this pipeline
    lfw_x, _ = embed_folder(
        pipeline, "lfw-all", lfw_dir / "images", [p for p, _ in lfw], cache_dir, progress
    )
    ok_u = np.isfinite(utk_x).all(axis=1)
    ok_l = np.isfinite(lfw_x).all(axis=1)
    items = [i for i, k in zip(items, ok_u, strict=True) if k]
    lfw = [x for x, k in zip(lfw, ok_l, strict=True) if k]
    return AttributeData(
        utk_x=utk_x[ok_u],
        utk_age=np.array([i.age for i in items]),
        utk_gender=np.array([i.gender for i in items]),
        utk_race=np.array([i.race for i in items]),
        utk_test=np.array([is_test(i.relpath, seed) for i in items]),
        utk_how=[h for h, k in zip(utk_how, ok_u, strict=True) if k],
        lfw_x=lfw_x[ok_l],
        lfw_gender=np.array([g for _, g in lfw]),
        lfw_test=np.array([is_test(person_of(p), seed) for p, _ in lfw]),
        lfw_people=len({person_of(p) for p, _ in lfw}),
        embedder=pipeline.model,
        seed=seed,
        utk_files=[i.relpath for i in items],
        lfw_files=[p for p, _ in lfw],
    )


def validation_data(data: AttributeData) -> AttributeData:
    """The training side alone, split again (20 %, seed + 1, by file / by person) into train and
    validation sides: where choices between recipes are made, never on the test side."""
    keep_u, keep_l = ~data.utk_test, ~data.lfw_test
    utk_files = [f for f, k in zip(data.utk_files, keep_u, strict=True) if k]
    lfw_files = [f for f, k in zip(data.lfw_files, keep_l, strict=True) if k]
    seed = data.seed + 1
    return replace(
        data,
        utk_x=data.utk_x[keep_u],
        utk_age=data.utk_age[keep_u],
        utk_gender=data.utk_gender[keep_u],
        utk_race=data.utk_race[keep_u],
        utk_test=np.array([is_test(f, seed) for f in utk_files], bool),
        utk_how=[h for h, k in zip(data.utk_how, keep_u, strict=True) if k],
        lfw_x=data.lfw_x[keep_l],
        lfw_gender=data.lfw_gender[keep_l],
        lfw_test=np.array([is_test(person_of(f), seed) for f in lfw_files], bool),
        lfw_people=len({person_of(f) for f in lfw_files}),
        seed=seed,
        utk_files=utk_files,
        lfw_files=lfw_files,
    )


def train_heads(
    data: AttributeData,
    seed: int = SEED,
    epochs: int = 1000,
    actions: Collection[str] = ("gender", "race", "age"),
) -> dict[str, Head]:
    tr_u, tr_l = ~data.utk_test, ~data.lfw_test
    gx = np.concatenate([data.utk_x[tr_u], data.lfw_x[tr_l]])
    gy = np.concatenate([data.utk_gender[tr_u], data.lfw_gender[tr_l]])
    race_ok = tr_u & (data.utk_race >= 0)
    trainers = {
        "gender": lambda: train_head(gx, gy, GENDERS, "gender", seed=seed, epochs=epochs),
        "race": lambda: train_head(
            data.utk_x[race_ok], data.utk_race[race_ok], RACES, "race", seed=seed, epochs=epochs
        ),
        "age": lambda: train_head(
            data.utk_x[tr_u],
            np.clip(data.utk_age[tr_u], 0, AGE_BINS - 1),
            tuple(str(a) for a in range(AGE_BINS)),
            "age",
            seed=seed,
            epochs=epochs,
            age_sigma=2.5,
        ),
    }
    heads = {action: train() for action, train in trainers.items() if action in actions}
    return heads


def accuracy_of(
    pred: np.ndarray, y: np.ndarray, groups: np.ndarray | None = None
) -> dict[str, object]:
    """Accuracy with its 95 % bootstrap interval, resampling ``groups`` (people) when given."""
    correct = pred == y
    return {
        "accuracy": float(correct.mean()) if len(y) else float("nan"),
        "ci95": [round(v, 4) for v in accuracy_interval(correct, groups)],
        "n": len(y),
    }


def evaluate_heads(heads: dict[str, Head], data: AttributeData) -> dict[str, object]:
    """Figures on the held-out sides only."""
    te_u, te_l = data.utk_test, data.lfw_test
    probs = {
        action: (head.probabilities(data.utk_x[te_u]), head.probabilities(data.lfw_x[te_l]))
        for action, head in heads.items()
    }
    return metrics_of(probs, data)


def metrics_of(
    probs: dict[str, tuple[np.ndarray, np.ndarray]], data: AttributeData
) -> dict[str, object]:
    """Per action, its probabilities on the held-out UTKFace and LFW rows -> the figures."""
    te_u, te_l = data.utk_test, data.lfw_test
    out: dict[str, object] = {}
    if "gender" in probs:
        pu, pl = (p.argmax(1) for p in probs["gender"])
        yu, age = data.utk_gender[te_u], data.utk_age[te_u]
        people = np.array([person_of(f) for f, t in zip(data.lfw_files, te_l, strict=True) if t])
        out["gender"] = {
            "lfw_people_disjoint": accuracy_of(pl, data.lfw_gender[te_l], people),
            "utkface_all": accuracy_of(pu, yu),
            "utkface_adults_18plus": accuracy_of(pu[age >= 18], yu[age >= 18]),
            "utkface_under_10": accuracy_of(pu[age < 10], yu[age < 10]),
        }
    if "age" in probs:
        pred = age_from_probabilities(probs["age"][0])
        y = data.utk_age[te_u]
        err = np.abs(pred - y)
        bands = {}
        for lo, hi in AGE_BANDS:
            m = (y >= lo) & (y <= hi)
            name = f"{lo}-{hi}" if hi < 200 else f"{lo}+"
            bands[name] = {"mae": float(err[m].mean()) if m.any() else None, "n": int(m.sum())}
        out["age"] = {"utkface_mae": float(err.mean()), "n": len(y), "bands": bands}
    if "race" in probs:
        known = data.utk_race[te_u] >= 0
        pred = probs["race"][0][known].argmax(1)
        y = data.utk_race[te_u][known]
        recall = {
            RACES[k]: {"recall": float((pred[y == k] == k).mean()), "n": int((y == k).sum())}
            for k in range(len(RACES))
            if (y == k).any()
        }
        out["race"] = {"utkface": accuracy_of(pred, y), "per_group_recall": recall}
    return out


def save_heads(
    heads: dict[str, Head], data: AttributeData, metrics: dict[str, object], settings
) -> dict[str, Path]:
    paths = {}
    for action, head in heads.items():
        licence = "weights trained on UTKFace (non-commercial research only)" + (
            "; LFW gender labels (research)" if action == "gender" else ""
        )
        paths[action] = save_head(
            action, head, data.embedder, data.describe(), licence, metrics.get(action), settings
        )
    return paths


def save_head(
    action: str,
    head: Head,
    reads: str,
    data: dict[str, object],
    licence: str,
    metrics: object,
    settings,
) -> Path:
    """Stamp the head's provenance (``reads``: the model whose outputs it takes) and save it."""
    head.meta.update(
        {
            "embedder": reads,
            "trained_by": "faceid train-attributes",
            "data": data,
            "licence": licence,
            "heldout_metrics": metrics,
        }
    )
    return head.save(heads_dir(settings) / HEAD_FILES[action])
