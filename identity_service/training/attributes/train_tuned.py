"""``faceid train-attributes``, the tuned part: dlib's 256-channel stages fine-tuned for gender,
race and age (:mod:`.tuned`) on the same images and splits as the embedding heads
(:mod:`.train`), and measured on the same held-out sides beside them.

How ``analyze`` combines it with the embedding heads was chosen on a validation split cut from
the training side (:func:`.train.validation_data`, ``lab/attributes_validation.py``): see
:data:`.tuned.AVERAGED_WITH_HEAD`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from ...attributes.heads import AGE_BINS, HEAD_FILES, Head, heads_dir
from ...attributes.tuned_features import features_path
from ...embed.dlib_convert import DAT_FILENAME
from ...embed.dlib_format import parse_dlib_resnet
from ...models import get_model, resolve_file
from .chips import frozen_activations
from .data import GENDERS, RACES
from .train import AttributeData, metrics_of, save_head
from .tuned import (
    AVERAGED_WITH_HEAD,
    TUNED_ACTIONS,
    TunedLabels,
    TunedNetwork,
    TunedRecipe,
    train_tuned,
)

CLASSES = {
    "gender": GENDERS,
    "race": RACES,
    "age": tuple(str(a) for a in range(AGE_BINS)),
}


def load_dlib_resnet(settings):
    files = {f.filename: resolve_file(f, settings) for f in get_model("dlib-resnet-v1").files}
    dat = Path(files[DAT_FILENAME])
    return parse_dlib_resnet(dat.read_bytes(), str(dat))


def tuned_available(pipeline) -> bool:
    """The tuned network reads dlib chips: only a dlib-ResNet pipeline cuts them."""
    return pipeline.embedder.name.startswith("dlib-resnet-v1")


def frozen_for(
    pipeline,
    network: TunedNetwork,
    data: AttributeData,
    shared_dir: Path,
    cache_dir: Path,
    progress: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Frozen activations for ``data``'s UTKFace rows and LFW rows, in their order."""
    images = {f"utkface/{p}": shared_dir / "data" / "utkface" / p for p in data.utk_files}
    images |= {f"lfw/{p}": shared_dir / "data" / "lfw" / "images" / p for p in data.lfw_files}
    rows = frozen_activations(pipeline, network, images, cache_dir, progress)
    n = len(data.utk_files)
    return rows.acts[:n], rows.acts[n:]


def train_tuned_network(
    net,
    data: AttributeData,
    utk_acts: np.ndarray,
    lfw_acts: np.ndarray,
    *,
    seed: int,
    recipe: TunedRecipe,
    progress: Callable[[int, float], None] | None = None,
) -> TunedNetwork:
    """Train on the train sides: UTKFace (gender, race, age) and LFW (gender only)."""
    tr_u, tr_l = ~data.utk_test, ~data.lfw_test
    n_l = int(tr_l.sum())
    labels = TunedLabels(
        gender=np.concatenate([data.utk_gender[tr_u], data.lfw_gender[tr_l]]),
        race=np.concatenate([data.utk_race[tr_u], np.full(n_l, -1)]),
        age=np.concatenate([data.utk_age[tr_u], np.full(n_l, -1)]),
    )
    acts = np.concatenate([utk_acts[tr_u], lfw_acts[tr_l]])
    return train_tuned(net, acts, labels, seed=seed, recipe=recipe, progress=progress)


def evaluate_tuned(
    network: TunedNetwork,
    heads: dict[str, Head],
    data: AttributeData,
    utk_acts: np.ndarray,
    lfw_acts: np.ndarray,
) -> dict[str, object]:
    """Held-out figures of what ``analyze`` answers (the tuned network, averaged with the
    embedding head for :data:`AVERAGED_WITH_HEAD`), with each member's own beside them
    (``tuned``, ``embedding_head``)."""
    actions = [a for a in TUNED_ACTIONS if a in heads]
    te_u, te_l = data.utk_test, data.lfw_test
    tuned_u = network.probabilities(utk_acts[te_u])
    tuned_l = network.probabilities(lfw_acts[te_l])
    tuned = {a: (tuned_u[a], tuned_l[a]) for a in actions}
    head = {
        a: (heads[a].probabilities(data.utk_x[te_u]), heads[a].probabilities(data.lfw_x[te_l]))
        for a in actions
    }
    answer = {
        a: tuple((t + h) / 2 for t, h in zip(tuned[a], head[a], strict=True))
        if a in AVERAGED_WITH_HEAD
        else tuned[a]
        for a in actions
    }
    out = metrics_of(answer, data)
    members = {"tuned": metrics_of(tuned, data), "embedding_head": metrics_of(head, data)}
    for action in actions:
        out[action]["answer"] = (  # type: ignore[index]
            "tuned network and embedding head averaged"
            if action in AVERAGED_WITH_HEAD
            else "tuned network"
        )
        for name, metrics in members.items():
            out[action][name] = metrics[action]  # type: ignore[index]
    return out


def save_tuned(
    network: TunedNetwork,
    actions: list[str],
    data: AttributeData,
    metrics: dict[str, object],
    recipe: TunedRecipe,
    seed: int,
    settings,
) -> dict[str, Path]:
    """The features model and one head per action, all stamped with their provenance. Tuned
    heads of other actions read the features model this replaces: the caller removes them
    (:func:`remove_tuned`)."""
    meta = {"seed": seed, "recipe": recipe.describe()}
    features, heads = network.export({a: CLASSES[a] for a in actions}, meta)
    licence = "dlib ResNet CC0; tuned on UTKFace (non-commercial research only)"
    features.meta.update(
        {
            "embedder": data.embedder,
            "trained_by": "faceid train-attributes",
            "data": data.describe(),
            "licence": licence + "; LFW gender labels (research)",
        }
    )
    paths = {"tuned-features": features.save(features_path(settings))}
    for action in actions:
        paths[f"{action}-tuned"] = save_head(
            f"{action}-tuned",
            heads[action],
            data.embedder,
            data.describe(),
            licence + ("; LFW gender labels (research)" if action == "gender" else ""),
            metrics.get(action),
            settings,
        )
    return paths


def remove_tuned(actions: list[str], settings) -> list[str]:
    """Retraining without the tuned network must not leave an older one paired with new heads.
    Returns the files removed; the features model goes with the last tuned head."""
    folder = heads_dir(settings)
    removed = []
    for action in actions:
        path = folder / HEAD_FILES[f"{action}-tuned"]
        if path.is_file():
            path.unlink()
            removed.append(path.name)
    features = features_path(settings)
    left = [a for a in TUNED_ACTIONS if (folder / HEAD_FILES[f"{a}-tuned"]).is_file()]
    if not left and features.is_file():
        features.unlink()
        removed.append(features.name)
    return removed
