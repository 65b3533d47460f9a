"""What the attribute validation benches share: their command line, the validation split of the
training side (``validation_data``; the test side is not read) with its chips or cached frozen
activations, the embedding heads' answers on it, and how figures are printed and written."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from identity_service import FacePipeline
from identity_service.attributes.tuned import TUNED_ACTIONS
from identity_service.training.attributes.chips import face_chips
from identity_service.training.attributes.train import (
    AttributeData,
    load_data,
    metrics_of,
    train_heads,
    validation_data,
)
from identity_service.training.attributes.train_tuned import frozen_for, train_tuned_network
from identity_service.training.attributes.tuned import TunedNetwork, TunedRecipe

Sides = tuple[np.ndarray, np.ndarray]  # probabilities on the UTKFace and LFW validation rows


def arguments(doc: str | None, name: str) -> argparse.ArgumentParser:
    """``--workers`` and ``--out`` (``bench/results/<name>.json``); callers add their own."""
    ap = argparse.ArgumentParser(description=doc)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / f"{name}.json")
    return ap


def validation_chips(settings, workers: int) -> tuple[AttributeData, np.ndarray]:
    """The split, and the chip of each of its rows (UTKFace rows, then LFW rows)."""
    shared = settings.shared_dir
    with FacePipeline(settings=settings, workers=workers) as pipeline:
        val = validation_data(load_data(pipeline, shared, settings.cache_dir))
        paths = [shared / "data" / "utkface" / f for f in val.utk_files]
        paths += [shared / "data" / "lfw" / "images" / f for f in val.lfw_files]
        return val, face_chips(pipeline, paths)


def validation_activations(
    pipeline: FacePipeline, network: TunedNetwork
) -> tuple[AttributeData, np.ndarray, np.ndarray]:
    """The split, and the cached frozen activations (chip and mirror) of its UTKFace and LFW
    rows, as `faceid train-attributes` computes them."""
    settings = pipeline.settings
    data = load_data(pipeline, settings.shared_dir, settings.cache_dir)
    utk, lfw = frozen_for(pipeline, network, data, settings.shared_dir, settings.cache_dir)
    return validation_data(data), utk[~data.utk_test], lfw[~data.lfw_test]


def head_answers(val: AttributeData, actions=TUNED_ACTIONS) -> dict[str, Sides]:
    """The embedding heads, trained on the split's train side, on its validation rows."""
    heads = train_heads(val, seed=val.seed, actions=actions)
    vu, vl = val.utk_test, val.lfw_test
    return {
        a: (heads[a].probabilities(val.utk_x[vu]), heads[a].probabilities(val.lfw_x[vl]))
        for a in actions
    }


def tuned_and_average(
    net,
    val: AttributeData,
    train_acts: np.ndarray,
    acts: np.ndarray,
    head: dict[str, Sides],
    recipe: TunedRecipe,
) -> tuple[dict[str, Sides], dict[str, Sides], float]:
    """Train the tuned network on ``train_acts`` (one row per split row, UTKFace rows first) and
    answer on the validation rows of ``acts`` (chip and mirror): alone, and averaged with the
    embedding ``head`` for the actions it has; with the training's seconds."""
    n_u = len(val.utk_files)
    t = time.perf_counter()
    network = train_tuned_network(
        net, val, train_acts[:n_u], train_acts[n_u:], seed=val.seed, recipe=recipe
    )
    seconds = time.perf_counter() - t
    pu = network.probabilities(acts[:n_u][val.utk_test])
    pl = network.probabilities(acts[n_u:][val.lfw_test])
    tuned = {a: (pu[a], pl[a]) for a in TUNED_ACTIONS}
    average = {a: mean_of(head[a], tuned[a]) for a in head}
    return tuned, average, seconds


def mean_of(*members: Sides) -> Sides:
    return tuple(np.mean(sides, axis=0) for sides in zip(*members, strict=True))  # type: ignore[return-value]


def headline(m: dict) -> dict[str, float]:
    gender = m["gender"]
    out = {
        "gender_lfw": round(gender["lfw_people_disjoint"]["accuracy"] * 100, 2),
        "gender_utkface": round(gender["utkface_all"]["accuracy"] * 100, 2),
        "gender_utkface_under_10": round(gender["utkface_under_10"]["accuracy"] * 100, 2),
    }
    if "race" in m:
        out["race"] = round(m["race"]["utkface"]["accuracy"] * 100, 2)
    if "age" in m:
        out["age_mae"] = round(m["age"]["utkface_mae"], 3)
    return out


def report(name: str, answers: dict[str, Sides], val: AttributeData, suffix: str = "") -> dict:
    """``answers``' validation metrics, their headline printed under ``name``."""
    metrics = metrics_of(answers, val)
    print(name, json.dumps(headline(metrics)), suffix)
    return metrics


def write(out: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {path}")
