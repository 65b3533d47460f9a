"""Why ``analyze`` answers age, gender and race with the tuned network alone: the three
candidates compared on a validation split of the *training* side (20 %, seed + 1; the test side
is not read).

Candidates, trained on the rest of the training side with the recipes `faceid train-attributes`
uses: the embedding heads, the tuned network (dlib's 256-channel stages fine-tuned), and the
equal-weight average of the two. Prints each one's validation figures and writes them.

    .venv/bin/python bench/attributes_validation.py [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from identity_service import FacePipeline, get_settings
from identity_service.attributes.train import (
    load_data,
    metrics_of,
    train_heads,
    validation_data,
)
from identity_service.attributes.train_tuned import (
    frozen_for,
    load_dlib_resnet,
    train_tuned_network,
)
from identity_service.attributes.tuned import TUNED_ACTIONS, TunedNetwork, TunedRecipe


def headline(m: dict) -> dict[str, float]:
    return {
        "gender_lfw": round(m["gender"]["lfw_people_disjoint"]["accuracy"] * 100, 2),
        "gender_utkface": round(m["gender"]["utkface_all"]["accuracy"] * 100, 2),
        "gender_utkface_under_10": round(m["gender"]["utkface_under_10"]["accuracy"] * 100, 2),
        "race": round(m["race"]["utkface"]["accuracy"] * 100, 2),
        "age_mae": round(m["age"]["utkface_mae"], 3),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).parent / "results" / "attributes_validation.json",
    )
    args = ap.parse_args()
    settings = get_settings()
    start = time.perf_counter()
    with FacePipeline(settings=settings, workers=args.workers) as pipeline:
        data = load_data(pipeline, settings.shared_dir, settings.cache_dir)
        net = load_dlib_resnet(settings)
        utk_acts, lfw_acts = frozen_for(
            pipeline, TunedNetwork(net), data, settings.shared_dir, settings.cache_dir
        )
    val = validation_data(data)
    utk_acts, lfw_acts = utk_acts[~data.utk_test], lfw_acts[~data.lfw_test]
    heads = train_heads(val, seed=val.seed)
    recipe = TunedRecipe()
    network = train_tuned_network(net, val, utk_acts, lfw_acts, seed=val.seed, recipe=recipe)
    vu, vl = val.utk_test, val.lfw_test
    tuned_u, tuned_l = network.probabilities(utk_acts[vu]), network.probabilities(lfw_acts[vl])
    probs = {
        "embedding_heads": {
            a: (heads[a].probabilities(val.utk_x[vu]), heads[a].probabilities(val.lfw_x[vl]))
            for a in TUNED_ACTIONS
        },
        "tuned": {a: (tuned_u[a], tuned_l[a]) for a in TUNED_ACTIONS},
    }
    probs["average"] = {
        a: tuple(
            (h + t) / 2 for h, t in zip(probs["embedding_heads"][a], probs["tuned"][a], strict=True)
        )
        for a in TUNED_ACTIONS
    }
    out = {
        "validation": val.describe(),
        "tuned_recipe": recipe.describe(),
        "metrics": {name: metrics_of(p, val) for name, p in probs.items()},
        "seconds": round(time.perf_counter() - start, 1),
    }
    for name, metrics in out["metrics"].items():
        print(name, json.dumps(headline(metrics)))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
