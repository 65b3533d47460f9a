"""Attribute analysis measured on held-out shared data.

Age, gender and race heads (trained by ``faceid train-attributes``, read from the model cache)
on the held-out sides of the splits fixed in ``identity_service.attributes``: LFW gender
people-disjoint (20% of people), UTKFace test (20% of files; UTKFace has no identities, so the
same person may sit on both sides). Emotion: the FER MobileFaceNet, with the emotion head and
the emotion CNN when they are trained (``model`` in the output says which), on FER2013
``validation/`` (PublicTest); 48x48 images are upscaled before detection, and where no face is
detected the whole image is taken as the aligned face (counted in the output). The peer, run in
the same process, is the FER model with its own classifier.

    .venv/bin/python bench/attributes.py [--fer-limit N]
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import numpy as np

from identity_service import FacePipeline, get_settings
from identity_service.attributes import analyze_images, load_head
from identity_service.attributes.analyze import models_for
from identity_service.attributes.data import EMOTIONS, SEED
from identity_service.attributes.emotion import EmotionModel
from identity_service.attributes.fer import read_fer
from identity_service.attributes.train import evaluate_heads, load_data
from identity_service.errors import FaceIDError


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
    with FacePipeline() as pipeline:
        out["pipeline"] = {"detector": pipeline.detector.name, "embedder": pipeline.model}
        if not args.skip_heads:
            t = time.perf_counter()
            data = load_data(pipeline, settings.shared_dir, settings.cache_dir)
            heads = {a: load_head(a, settings) for a in ("age", "gender", "race")}
            out["data"] = data.describe()
            out["heads"] = evaluate_heads(heads, data)
            out["heads_seconds"] = round(time.perf_counter() - t, 1)
            print(json.dumps(out["heads"], indent=1))
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
