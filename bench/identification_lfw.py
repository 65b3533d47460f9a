"""Closed- and open-set identification on the shared LFW images, through the FAISS gallery.

Protocol (shared/README.md): people with >= 5 images give one gallery image each (their first)
and the rest are mated probes; every other LFW image is enrolled as a distractor identity of its
own person. Open set: each mated probe is also searched with its own identity left out of the
gallery (a non-mated search); the threshold at FAR x is the similarity that x of non-mated
searches reach, and DIR@FAR is the share of mated probes found at rank 1 above it.

    .venv/bin/python bench/identification_lfw.py [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from identity_service import FacePipeline, get_settings
from identity_service.calibration.cache import EmbeddingCache, embed_images
from identity_service.index import GalleryIndex


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--detector", default=None)
    ap.add_argument("--embedder", default=None)
    ap.add_argument("--min-images", type=int, default=5)
    ap.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "identification_lfw.json"
    )
    args = ap.parse_args()
    settings = get_settings()
    images_dir = settings.lfw_dir / "images"
    relpaths = sorted(str(p.relative_to(images_dir)) for p in images_dir.glob("*/*.jpg"))
    with FacePipeline(args.detector, args.embedder, workers=args.workers) as pipeline:
        key = f"{pipeline.detector.name}|{pipeline.model}|centre"
        cache = EmbeddingCache(
            EmbeddingCache.file_for(settings.cache_dir, "lfw-all", key), pipeline.embedder.dim
        )
        t = time.perf_counter()
        table = embed_images(pipeline, images_dir, relpaths, cache)
        print(
            f"embedded {len(relpaths)} images in {time.perf_counter() - t:.0f} s "
            f"(cache: {cache.path})"
        )
        model = pipeline.model
    by_person: dict[str, list[str]] = defaultdict(list)
    for rel in relpaths:
        by_person[rel.split("/")[0]].append(rel)
    subjects = sorted(p for p, imgs in by_person.items() if len(imgs) >= args.min_images)
    gallery: list[tuple[str, str]] = []  # (person, image)
    probes: list[tuple[str, str]] = []
    for person, imgs in by_person.items():
        if person in subjects:
            gallery.append((person, imgs[0]))
            probes.extend((person, img) for img in imgs[1:])
        else:
            gallery.extend((person, img) for img in imgs)  # distractors
    g_vec = np.stack([table[img].embedding for _, img in gallery]).astype(np.float32)
    p_vec = np.stack([table[img].embedding for _, img in probes]).astype(np.float32)
    g_person = np.array([p for p, _ in gallery])
    index = GalleryIndex(g_vec.shape[1], "flat")
    index.add(np.arange(len(gallery), dtype=np.int64), g_vec)
    t = time.perf_counter()
    sims, ids = index.search(p_vec, 50)
    search_ms = (time.perf_counter() - t) * 1000 / len(probes)
    truth = np.array([p for p, _ in probes])
    # Rank of the true identity among distinct identities (galleries here hold one face for
    # each subject, so face rank = identity rank for subjects).
    hit_rank = np.full(len(probes), np.inf)
    nonmated = np.empty(len(probes), np.float32)
    for i, (row_ids, row_sims) in enumerate(zip(ids, sims, strict=True)):
        persons = g_person[row_ids]
        where = np.flatnonzero(persons == truth[i])
        if where.size:
            hit_rank[i] = where[0] + 1
        others = np.flatnonzero(persons != truth[i])
        nonmated[i] = row_sims[others[0]]  # top score with the subject left out of the gallery
    rank1 = float(np.mean(hit_rank <= 1))
    rank5 = float(np.mean(hit_rank <= 5))
    top_is_right = hit_rank == 1
    top_sim = sims[:, 0]
    dir_at = {}
    for far in (1e-2, 1e-3):
        threshold = float(np.quantile(nonmated, 1 - far, method="higher"))
        dir_at[f"{far:g}"] = {
            "threshold_similarity": threshold,
            "dir": float(np.mean(top_is_right & (top_sim > threshold))),
            "nonmated_searches": len(nonmated),
        }
    result = {
        "model": model,
        "subjects": len(subjects),
        "gallery_faces": len(gallery),
        "distractors": len(gallery) - len(subjects),
        "mated_probes": len(probes),
        "rank1": rank1,
        "rank5": rank5,
        "dir_at_far": dir_at,
        "no_face_images": sum(table[r].how != "detected" for r in relpaths),
        "search_ms_per_probe_batched": search_ms,
    }
    print(json.dumps(result, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
