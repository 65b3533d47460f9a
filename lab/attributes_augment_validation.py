"""Training augmentation for the tuned network, on the validation split of the *training* side
(as ``attributes_validation.py``; the test side is not read): the product's training input
(each chip and its mirror) against the same plus ``--views`` random views per training image
(``identity_service.attributes.augment``: affine, mirror, colour jitter), drawn once and run
through the frozen layers once. Same recipe, seed and epochs for both; each is measured alone
and averaged with the embedding head, on the validation chips and mirrors only.

Decided before running: augmentation ships if gender (the average, as ``analyze`` answers it) is
no worse on either side and better on at least one, while race and age (the tuned network
alone) lose no more than 0.5 point and 0.1 year.

    .venv/bin/python lab/attributes_augment_validation.py [--views 6] [--workers 2]
"""

from __future__ import annotations

import time

import numpy as np
from augment import Augmentation, augmented_chips  # lab/augment.py
from validation_split import (  # lab/validation_split.py
    arguments,
    head_answers,
    report,
    tuned_and_average,
    validation_chips,
    write,
)

from identity_service import get_settings
from identity_service.training.attributes.train_tuned import load_dlib_resnet
from identity_service.training.attributes.tuned import TunedNetwork, TunedRecipe


def main() -> None:
    ap = arguments(__doc__, "attributes_augment_validation")
    ap.add_argument("--views", type=int, default=6, help="random views per training image")
    args = ap.parse_args()
    settings = get_settings()
    val, chips = validation_chips(settings, args.workers)
    net = load_dlib_resnet(settings)
    frozen = TunedNetwork(net)
    head = head_answers(val)
    acts = frozen.frozen(chips)
    t = time.perf_counter()
    extra = np.zeros((len(chips), args.views, *acts.shape[2:]), np.float16)
    for start in range(0, len(chips), 512):
        views = augmented_chips(chips[start : start + 512], args.views, seed=val.seed + start)
        for v in range(args.views):
            extra[start : start + 512, v] = frozen.frozen(views[:, v], mirror=False)[:, 0]
    augment_s = time.perf_counter() - t
    recipe = TunedRecipe()
    out: dict[str, object] = {
        "validation": val.describe(),
        "recipe": recipe.describe(),
        "augmentation": {**Augmentation().describe(), "views": args.views},
        "augment_seconds": round(augment_s, 1),
        "embedding_heads": report("embedding heads", head, val),
        "candidates": {},
    }
    candidates = {
        "chip and mirror (product)": acts,
        f"chip, mirror and {args.views} random views": np.concatenate([acts, extra], axis=1),
    }
    for name, train_acts in candidates.items():
        tuned, average, train_s = tuned_and_average(net, val, train_acts, acts, head, recipe)
        took = f"train {train_s:.0f} s"
        out["candidates"][name] = {  # type: ignore[index]
            "training_seconds": round(train_s, 1),
            "tuned": report(f"{name}, tuned", tuned, val, took),
            "average": report(f"{name}, average", average, val, took),
        }
    write(out, args.out)


if __name__ == "__main__":
    main()
