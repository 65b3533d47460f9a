"""Pipeline benchmark on the shared LFW images, against the face_recognition library in the
same process: verification accuracy (LFW protocol), enrollment throughput and verify latency.

    .venv/bin/python bench/pipeline_lfw.py [--images 400] [--peer-folds 1] [--workers 2]

The peer (install: pip install --no-deps face-recognition) is what its README teaches: HOG
detection with upsample 1, ``face_encodings`` of every face, euclidean distance, threshold 0.6.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np

from identity_service import FacePipeline, get_settings
from identity_service.calibration.metrics import accuracy_at, best_threshold
from identity_service.calibration.sources import read_pairs
from identity_service.training.eval.lfw import evaluate


def peer_encode(path: Path) -> list[np.ndarray]:
    import face_recognition

    image = face_recognition.load_image_file(str(path))
    return face_recognition.face_encodings(image)  # HOG, upsample 1, all faces


def peer_accuracy(lfw: Path, folds: list[int], cache: Path) -> dict[str, object]:
    pairs = [p for p in read_pairs(lfw / "pairs.txt") if p.fold in folds]
    images = sorted({p.image1 for p in pairs} | {p.image2 for p in pairs})
    table: dict[str, np.ndarray | None] = {}
    if cache.is_file():
        data = np.load(cache)
        table = {
            str(k): (v if np.isfinite(v).all() else None)
            for k, v in zip(data["paths"], data["enc"], strict=True)
        }
    for rel in images:
        if rel not in table:
            encs = peer_encode(lfw / "images" / rel)
            table[rel] = encs[0] if encs else None  # the peer's first face, as users write it
    keys = sorted(table)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        cache,
        paths=np.array(keys),
        enc=np.stack([table[k] if table[k] is not None else np.full(128, np.nan) for k in keys]),
    )
    same = np.array([p.same for p in pairs])
    dist = np.array(
        [
            np.linalg.norm(table[p.image1] - table[p.image2])
            if table[p.image1] is not None and table[p.image2] is not None
            else np.nan
            for p in pairs
        ]
    )
    missing = ~np.isfinite(dist)
    # A pair the peer cannot encode is a wrong answer (its users get an IndexError).
    dist = np.where(missing, np.where(same, np.inf, -np.inf), dist)
    fold_ids = np.array([p.fold for p in pairs])
    tuned = []
    for fold in folds:
        test = fold_ids == fold
        train = (~test if len(folds) > 1 else test) & ~missing
        tuned.append(accuracy_at(dist[test], same[test], best_threshold(dist[train], same[train])))
    return {
        "folds": [f + 1 for f in folds],
        "accuracy_at_0.6": accuracy_at(dist, same, 0.6),
        "accuracy_tuned_threshold": float(np.mean(tuned)),
        "images_without_face": int(sum(table[r] is None for r in images)),
        "pairs_without_face": int(missing.sum()),
    }


def throughput(paths: list[Path], workers: int, detector: str | None, embedder: str | None):
    """Wall-clock faces/s (the peer is one process; faceid uses ``workers`` processes) and
    faces per CPU-second of one process for both, which other jobs on the machine don't skew."""
    t, c = time.perf_counter(), time.process_time()
    peer_faces = sum(len(peer_encode(p)) for p in paths)
    peer_s, peer_cpu = time.perf_counter() - t, time.process_time() - c
    with FacePipeline(detector, embedder, workers=1) as single:
        single.represent_batch(paths[:2])  # load models
        c = time.process_time()
        one = single.represent_batch(paths)
        ours_cpu = time.process_time() - c
    with FacePipeline(detector, embedder, workers=workers) as pipeline:
        pipeline.represent_batch(paths[: 4 * workers], chunk=2)  # start the worker processes
        t = time.perf_counter()
        results = pipeline.represent_batch(paths)
        ours_s = time.perf_counter() - t
    ours_faces = sum(len(r) for r in results if isinstance(r, list))
    one_faces = sum(len(r) for r in one if isinstance(r, list))
    return {
        "images": len(paths),
        "peer_faces": peer_faces,
        "peer_faces_per_s": peer_faces / peer_s,
        "peer_faces_per_cpu_s": peer_faces / peer_cpu,
        "ours_faces": ours_faces,
        "ours_faces_per_s": ours_faces / ours_s,
        "ours_faces_per_cpu_s": one_faces / ours_cpu,
        "ours_workers": workers,
        "ratio": (ours_faces / ours_s) / (peer_faces / peer_s),
        "ratio_per_cpu_s": (one_faces / ours_cpu) / (peer_faces / peer_cpu),
        "loadavg_1m": os.getloadavg()[0],
    }


def verify_latency(pairs: list[tuple[Path, Path]], detector, embedder) -> dict[str, float]:
    import face_recognition

    pipeline = FacePipeline(detector, embedder, workers=1)
    ours, peer = [], []
    for a, b in pairs:
        t = time.perf_counter()
        pipeline.verify(a, b)
        ours.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        ea, eb = peer_encode(a), peer_encode(b)
        if ea and eb:
            face_recognition.compare_faces([ea[0]], eb[0], tolerance=0.6)
        peer.append((time.perf_counter() - t) * 1000)
    q = lambda xs, p: float(np.percentile(xs, p))  # noqa: E731
    return {
        "n": len(pairs),
        "ours_p50_ms": statistics.median(ours),
        "ours_p99_ms": q(ours, 99),
        "peer_p50_ms": statistics.median(peer),
        "speedup_p50": statistics.median(peer) / statistics.median(ours),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--images", type=int, default=400, help="images for the throughput run")
    ap.add_argument("--peer-folds", default="1", help="folds (1-based) for the peer's accuracy")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--detector", default=None)
    ap.add_argument("--embedder", default=None)
    ap.add_argument("--verify-pairs", type=int, default=40)
    ap.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "pipeline_lfw.json"
    )
    args = ap.parse_args()
    settings = get_settings()
    lfw = settings.lfw_dir
    folds = [int(f) - 1 for f in args.peer_folds.split(",")]
    result: dict[str, object] = {}

    print("== accuracy (LFW protocol; threshold chosen on the other folds)", flush=True)
    with FacePipeline(args.detector, args.embedder, workers=args.workers) as pipeline:
        all_folds = evaluate(pipeline, lfw, settings.cache_dir)
        same_folds = evaluate(pipeline, lfw, settings.cache_dir, folds=folds)
    result["ours_all_folds"] = {
        "model": all_folds.model,
        "detector": all_folds.detector,
        "mean_accuracy": all_folds.mean_accuracy,
        "std": all_folds.std_accuracy,
        "auc": all_folds.auc,
        "tar_at_far_1e-3": all_folds.tar_at_far.tar,
        "no_face_images": all_folds.no_face_images,
        "best_threshold_all_folds": all_folds.best_threshold_all_folds,
    }
    peer = peer_accuracy(lfw, folds, settings.cache_dir / "peer-face_recognition-lfw.npz")
    result["peer_accuracy"] = peer
    result["ours_on_peer_folds"] = same_folds.mean_accuracy
    print(
        f"  faceid  ({all_folds.model}, {all_folds.detector}): folds 1-7 "
        f"{all_folds.mean_accuracy:.4f} ± {all_folds.std_accuracy:.4f}; "
        f"folds {peer['folds']}: {same_folds.mean_accuracy:.4f}"
    )
    print(
        f"  face_recognition, folds {peer['folds']}: {peer['accuracy_at_0.6']:.4f} at 0.6, "
        f"{peer['accuracy_tuned_threshold']:.4f} with a tuned threshold; "
        f"{peer['images_without_face']} images without a face"
    )

    print("== enrollment throughput (faces embedded per second)", flush=True)
    paths = sorted((lfw / "images").glob("*/*.jpg"))[: args.images]
    tp = throughput(paths, args.workers, args.detector, args.embedder)
    result["throughput"] = tp
    print(
        f"  face_recognition loop: {tp['peer_faces_per_s']:.1f} faces/s; faceid "
        f"({args.workers} processes): {tp['ours_faces_per_s']:.1f} faces/s; "
        f"ratio {tp['ratio']:.2f}x (load average {tp['loadavg_1m']:.1f})"
    )
    print(
        f"  per CPU-second of one process: face_recognition {tp['peer_faces_per_cpu_s']:.1f}, "
        f"faceid {tp['ours_faces_per_cpu_s']:.1f} faces; ratio {tp['ratio_per_cpu_s']:.2f}x"
    )

    print("== verify latency, two 250x250 images", flush=True)
    pairs = read_pairs(lfw / "pairs.txt")[: args.verify_pairs]
    vl = verify_latency(
        [(lfw / "images" / p.image1, lfw / "images" / p.image2) for p in pairs],
        args.detector,
        args.embedder,
    )
    result["verify_latency"] = vl
    print(
        f"  faceid p50 {vl['ours_p50_ms']:.1f} ms (p99 {vl['ours_p99_ms']:.1f}); "
        f"face_recognition p50 {vl['peer_p50_ms']:.1f} ms; {vl['speedup_p50']:.2f}x"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
