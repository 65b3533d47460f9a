"""Where to cut dlib's ResNet for the tuned network: the stages from the first 256-, 128- or
64-channel block up trained (``TunedRecipe.cut_channels``), everything else as
`faceid train-attributes` trains it, compared on the validation split of the *training* side
(as ``attributes_validation.py``; the test side is not read). Prints, per cut, the tuned
network alone and averaged with the embedding head, with the seconds its frozen pass and its
training took, and writes them.

    .venv/bin/python lab/attributes_cut_validation.py [--cuts 256,128,64] [--workers 2]
"""

from __future__ import annotations

import time

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
    ap = arguments(__doc__, "attributes_cut_validation")
    ap.add_argument("--cuts", default="256,128,64", help="channels of the first trained stage")
    args = ap.parse_args()
    settings = get_settings()
    val, chips = validation_chips(settings, args.workers)
    net = load_dlib_resnet(settings)
    head = head_answers(val)
    out: dict[str, object] = {
        "validation": val.describe(),
        "embedding_heads": report("embedding heads", head, val),
        "cuts": {},
    }
    for cut in (int(c) for c in args.cuts.split(",")):
        recipe = TunedRecipe(cut_channels=cut)
        t = time.perf_counter()
        acts = TunedNetwork(net, cut_channels=cut).frozen(chips)
        frozen_s = time.perf_counter() - t
        tuned, average, train_s = tuned_and_average(net, val, acts, acts, head, recipe)
        took = f"train {train_s:.0f} s"
        out["cuts"][str(cut)] = {  # type: ignore[index]
            "recipe": recipe.describe(),
            "activations": list(acts.shape[1:]),
            "frozen_seconds": round(frozen_s, 1),
            "training_seconds": round(train_s, 1),
            "tuned": report(f"cut {cut} tuned", tuned, val, took),
            "average": report(f"cut {cut} average", average, val, took),
        }
        del acts
    write(out, args.out)


if __name__ == "__main__":
    main()
