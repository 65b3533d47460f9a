"""Where to cut dlib's ResNet for the tuned network: the stages from the first 256-, 128- or
64-channel block up trained (``TunedRecipe.cut_channels``), everything else as
`faceid train-attributes` trains it, compared on the validation split of the *training* side
(as ``attributes_validation.py``; the test side is not read). Prints, per cut, the tuned
network alone and averaged with the embedding head, with the seconds its frozen pass and its
training took, and writes them.

    .venv/bin/python bench/attributes_cut_validation.py [--cuts 256,128,64] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from attributes_validation import headline, mean_of  # bench/attributes_validation.py

from identity_service import FacePipeline, get_settings
from identity_service.attributes.chips import face_chips
from identity_service.attributes.train import load_data, metrics_of, train_heads, validation_data
from identity_service.attributes.train_tuned import load_dlib_resnet, train_tuned_network
from identity_service.attributes.tuned import TUNED_ACTIONS, TunedNetwork, TunedRecipe


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--cuts", default="256,128,64", help="channels of the first trained stage")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).parent / "results" / "attributes_cut_validation.json",
    )
    args = ap.parse_args()
    settings = get_settings()
    shared = settings.shared_dir
    with FacePipeline(settings=settings, workers=args.workers) as pipeline:
        data = load_data(pipeline, shared, settings.cache_dir)
        val = validation_data(data)  # its rows: the training side, UTKFace then LFW
        paths = [shared / "data" / "utkface" / f for f in val.utk_files]
        paths += [shared / "data" / "lfw" / "images" / f for f in val.lfw_files]
        chips = face_chips(pipeline, paths)
    n_u = len(val.utk_files)
    net = load_dlib_resnet(settings)
    heads = train_heads(val, seed=val.seed)
    vu, vl = val.utk_test, val.lfw_test
    head = {
        a: (heads[a].probabilities(val.utk_x[vu]), heads[a].probabilities(val.lfw_x[vl]))
        for a in TUNED_ACTIONS
    }
    out: dict[str, object] = {
        "validation": val.describe(),
        "embedding_heads": metrics_of(head, val),
        "cuts": {},
    }
    print("embedding heads", json.dumps(headline(out["embedding_heads"])))
    for cut in (int(c) for c in args.cuts.split(",")):
        recipe = TunedRecipe(cut_channels=cut)
        t = time.perf_counter()
        acts = TunedNetwork(net, cut_channels=cut).frozen(chips)
        frozen_s = time.perf_counter() - t
        t = time.perf_counter()
        network = train_tuned_network(
            net, val, acts[:n_u], acts[n_u:], seed=val.seed, recipe=recipe
        )
        train_s = time.perf_counter() - t
        pu, pl = network.probabilities(acts[:n_u][vu]), network.probabilities(acts[n_u:][vl])
        tuned = {a: (pu[a], pl[a]) for a in TUNED_ACTIONS}
        average = {a: mean_of(head[a], tuned[a]) for a in TUNED_ACTIONS}
        out["cuts"][str(cut)] = {  # type: ignore[index]
            "recipe": recipe.describe(),
            "activations": list(acts.shape[1:]),
            "frozen_seconds": round(frozen_s, 1),
            "training_seconds": round(train_s, 1),
            "tuned": metrics_of(tuned, val),
            "average": metrics_of(average, val),
        }
        for name in ("tuned", "average"):
            figures = headline(out["cuts"][str(cut)][name])  # type: ignore[index]
            print(f"cut {cut} {name}", json.dumps(figures), f"train {train_s:.0f} s")
        del acts
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
