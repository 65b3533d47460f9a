"""Gender under equal class priors, on the validation split of the *training* side (as
``attributes_validation.py``; the test side is not read).

The training side mixes UTKFace (about 55 % women) and LFW (about 23 %), so the gender members
learn a prior of about 62 % men that belongs to neither data set, nor to a user's. Dividing each
answer's probabilities by the training side's class shares and renormalising (the label-shift
correction of Saerens et al., 2002) gives the answer under equal priors. Compared here on the
product's answer (tuned network and embedding head averaged), with the product's recipes.

Decided before running: the correction ships if gender is no worse on either validation side and
better on at least one.

    .venv/bin/python lab/attributes_prior_validation.py [--workers 2]
"""

from __future__ import annotations

import time

import numpy as np
from validation_split import (  # lab/validation_split.py
    arguments,
    head_answers,
    report,
    tuned_and_average,
    validation_activations,
    write,
)

from identity_service import FacePipeline, get_settings
from identity_service.training.attributes.train_tuned import load_dlib_resnet
from identity_service.training.attributes.tuned import TunedNetwork, TunedRecipe


def equal_priors(p: np.ndarray, shares: np.ndarray) -> np.ndarray:
    q = p / shares
    return q / q.sum(axis=1, keepdims=True)


def main() -> None:
    args = arguments(__doc__, "attributes_prior_validation").parse_args()
    settings = get_settings()
    start = time.perf_counter()
    net = load_dlib_resnet(settings)
    with FacePipeline(settings=settings, workers=args.workers) as pipeline:
        val, utk_acts, lfw_acts = validation_activations(pipeline, TunedNetwork(net))
    vu, vl = val.utk_test, val.lfw_test
    trained_on = np.concatenate([val.utk_gender[~vu], val.lfw_gender[~vl]])
    shares = np.bincount(trained_on, minlength=2) / len(trained_on)
    shown = [round(float(s), 4) for s in shares]
    print("training class shares", shown)
    acts = np.concatenate([utk_acts, lfw_acts])
    head = head_answers(val, ("gender",))
    average = tuned_and_average(net, val, acts, acts, head, TunedRecipe())[1]["gender"]
    candidates = {
        "average (product)": {"gender": average},
        "average, equal priors": {"gender": tuple(equal_priors(p, shares) for p in average)},
    }
    out = {
        "validation": val.describe(),
        "training_class_shares": shown,
        "metrics": {name: report(name, p, val) for name, p in candidates.items()},
        "seconds": round(time.perf_counter() - start, 1),
    }
    write(out, args.out)


if __name__ == "__main__":
    main()
