"""How ``analyze`` answers age, gender and race: the candidates compared on a validation split
of the *training* side (20 %, seed + 1; the test side is not read).

Candidates, trained on the rest of the training side with the recipes `faceid train-attributes`
uses: the embedding heads, the tuned network (dlib's 256-channel stages fine-tuned), and the
equal-weight average of the two. Three more were tried for gender, the attribute still short of
its goals, each added to that average: dlib's own gender network (``dlib_peer.py``; chip and
mirror); the tuned network over 8 views (the chip, its mirror and the 6 dlib-style jitters of
the 8-view embedder) instead of 2; and a second tuned network, trained with another seed. Prints
each one's validation figures and writes them.

    .venv/bin/python lab/attributes_validation.py [--workers 2]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))  # bench/dlib_peer.py
from dlib_peer import DlibPeer
from validation_split import (  # lab/validation_split.py
    arguments,
    head_answers,
    mean_of,
    report,
    validation_activations,
    write,
)

from identity_service import FacePipeline, get_settings
from identity_service.attributes.tuned import TUNED_ACTIONS
from identity_service.embed.tta import jitter_views, render
from identity_service.training.attributes.train_tuned import load_dlib_resnet, train_tuned_network
from identity_service.training.attributes.tuned import TunedNetwork, TunedRecipe


def main() -> None:
    args = arguments(__doc__, "attributes_validation").parse_args()
    settings = get_settings()
    start = time.perf_counter()
    net = load_dlib_resnet(settings)
    with FacePipeline(settings=settings, workers=args.workers) as pipeline:
        val, utk_acts, lfw_acts = validation_activations(pipeline, TunedNetwork(net))
        shared = settings.shared_dir
        faces = [
            DlibPeer.face(pipeline, shared / "data" / "utkface" / f)
            for f, t in zip(val.utk_files, val.utk_test, strict=True)
            if t
        ] + [
            DlibPeer.face(pipeline, shared / "data" / "lfw" / "images" / f)
            for f, t in zip(val.lfw_files, val.lfw_test, strict=True)
            if t
        ]
    heads = head_answers(val)
    recipe = TunedRecipe()
    network = train_tuned_network(net, val, utk_acts, lfw_acts, seed=val.seed, recipe=recipe)
    vu, vl = val.utk_test, val.lfw_test
    tuned_u, tuned_l = network.probabilities(utk_acts[vu]), network.probabilities(lfw_acts[vl])
    probs = {
        "embedding_heads": heads,
        "tuned": {a: (tuned_u[a], tuned_l[a]) for a in TUNED_ACTIONS},
    }
    probs["average"] = {
        a: mean_of(probs["embedding_heads"][a], probs["tuned"][a]) for a in TUNED_ACTIONS
    }
    n_u = int(vu.sum())

    def sides(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return p[:n_u], p[n_u:]

    head_gender = probs["embedding_heads"]["gender"]
    dlib = DlibPeer().gender(np.stack([f.chips["gender"] for f in faces]), mirror=True)
    probs["average + dlib's gender network"] = {
        "gender": mean_of(head_gender, probs["tuned"]["gender"], sides(dlib))
    }
    chips = np.stack([f.dlib_chip for f in faces])
    frozen = TunedNetwork(net)
    jitters = [
        frozen.frozen(np.stack([render(c, view) for c in chips]), mirror=False)[:, 0]
        for view in jitter_views(8)[2:]
    ]
    acts8 = np.concatenate(
        [np.concatenate([utk_acts[vu], lfw_acts[vl]]), np.stack(jitters, axis=1)], axis=1
    )
    tuned8 = network.probabilities(acts8)["gender"]
    probs["average, tuned over 8 views"] = {"gender": mean_of(head_gender, sides(tuned8))}
    second = train_tuned_network(net, val, utk_acts, lfw_acts, seed=val.seed + 100, recipe=recipe)
    second_u = second.probabilities(utk_acts[vu])["gender"]
    second_l = second.probabilities(lfw_acts[vl])["gender"]
    two_seeds = mean_of(probs["tuned"]["gender"], (second_u, second_l))
    probs["average, two tuned seeds"] = {"gender": mean_of(head_gender, two_seeds)}
    out = {
        "validation": val.describe(),
        "tuned_recipe": recipe.describe(),
        "metrics": {name: report(name, p, val) for name, p in probs.items()},
        "seconds": round(time.perf_counter() - start, 1),
    }
    write(out, args.out)


if __name__ == "__main__":
    main()
