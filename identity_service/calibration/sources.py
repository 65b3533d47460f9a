"""Labelled pairs to calibrate on: LFW ``pairs.txt``, a CSV ``image1,image2,same``, or a
collection's own identities. Each source returns distances, labels and a description of the
data (what was used, what was skipped)."""

from __future__ import annotations

import csv
import hashlib
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DatasetError
from ..pipeline import FacePipeline
from ..store import Repository
from .cache import EmbeddingCache, embed_images


@dataclass(frozen=True)
class Pair:
    fold: int
    image1: str  # path relative to the images folder
    image2: str
    same: bool


def read_pairs(path: Path) -> list[Pair]:
    """Parse an LFW ``pairs.txt`` (header ``folds n``; n same then n different pairs per fold)."""
    if not path.is_file():
        raise DatasetError(f"LFW pairs file not found: {path} (set FACEID_SHARED_DIR)")
    lines = [ln.split() for ln in path.read_text().splitlines() if ln.strip()]
    try:
        n_folds, per_fold = int(lines[0][0]), int(lines[0][1])
    except (IndexError, ValueError) as exc:
        raise DatasetError(f"{path}: first line must be '<folds> <pairs per class>'") from exc
    pairs: list[Pair] = []
    for i, parts in enumerate(lines[1:]):
        fold = i // (2 * per_fold)
        if len(parts) == 3:
            name, a, b = parts
            pairs.append(Pair(fold, _image(name, a), _image(name, b), True))
        elif len(parts) == 4:
            n1, a, n2, b = parts
            pairs.append(Pair(fold, _image(n1, a), _image(n2, b), False))
        else:
            raise DatasetError(f"{path}: line {i + 2} is not a pair: {' '.join(parts)}")
    if len(pairs) != n_folds * 2 * per_fold:
        raise DatasetError(
            f"{path}: header promises {n_folds * 2 * per_fold} pairs, file has {len(pairs)}"
        )
    return pairs


def _image(name: str, number: str) -> str:
    return f"{name}/{name}_{int(number):04d}.jpg"


@dataclass
class PairSet:
    distances: np.ndarray  # cosine distances, float64
    same: np.ndarray  # bool
    dataset: str  # short name stored with the calibration
    details: dict[str, object] = field(default_factory=dict)


def _distances(
    table: dict[str, np.ndarray], pairs: list[tuple[str, str, bool]]
) -> tuple[np.ndarray, np.ndarray, int]:
    e1 = np.stack([table[a] for a, _, _ in pairs]).astype(np.float64)
    e2 = np.stack([table[b] for _, b, _ in pairs]).astype(np.float64)
    d = 1.0 - np.sum(e1 * e2, axis=1)
    same = np.array([s for _, _, s in pairs], dtype=bool)
    ok = np.isfinite(d)
    return d[ok], same[ok], int((~ok).sum())


def _cache(pipeline: FacePipeline, cache_dir: Path, name: str, on_no_face: str) -> EmbeddingCache:
    # The same key as ``faceid eval lfw`` for the shared LFW images: both share one cache.
    key = f"{pipeline.detector.name}|{pipeline.model}|{on_no_face}"
    return EmbeddingCache(EmbeddingCache.file_for(cache_dir, name, key), pipeline.embedder.dim)


def lfw_pairs(
    pipeline: FacePipeline,
    pairs_path: Path,
    cache_dir: Path,
    images_dir: Path | None = None,
    *,
    folds: list[int] | None = None,
    on_no_face: str = "centre",
    progress: Callable[[int], None] | None = None,
) -> PairSet:
    """Pairs of an LFW ``pairs.txt`` (images in ``images/`` beside it unless given).

    Each image contributes its centre-most face; with ``on_no_face="centre"`` an image without
    a detected face is embedded at the image centre, as ``faceid eval lfw`` does."""
    pairs = read_pairs(pairs_path)
    if folds is not None:
        pairs = [p for p in pairs if p.fold in folds]
    images_dir = images_dir or pairs_path.parent / "images"
    shared = images_dir.resolve() == (pairs_path.parent / "images").resolve()
    name = "lfw" if shared and pairs_path.parent.name == "lfw" else _tag("pairs", images_dir)
    cache = _cache(pipeline, cache_dir, name, on_no_face)
    relpaths = sorted({p.image1 for p in pairs} | {p.image2 for p in pairs})
    table = embed_images(pipeline, images_dir, relpaths, cache, on_no_face, progress)
    d, same, skipped = _distances(
        {k: v.embedding for k, v in table.items()},
        [(p.image1, p.image2, p.same) for p in pairs],
    )
    hows = [table[p].how for p in relpaths]
    return PairSet(
        d,
        same,
        dataset="lfw" if name == "lfw" else f"pairs:{pairs_path.name}",
        details={
            "source": "lfw-pairs",
            "pairs_file": str(pairs_path),
            "images_dir": str(images_dir),
            "folds": sorted({p.fold + 1 for p in pairs}),
            "images": len(relpaths),
            "no_face_images": sum(h == "assumed-centre" for h in hows),
            "no_face_handling": on_no_face,
            "error_images": sum(h.startswith("error") for h in hows),
            "pairs_skipped": skipped,
        },
    )


_TRUE = {"1", "true", "yes", "y", "same", "t"}
_FALSE = {"0", "false", "no", "n", "different", "diff", "f"}


def read_csv_pairs(path: Path) -> list[tuple[str, str, bool]]:
    """Rows ``image1,image2,same`` (header optional; same is 1/0, true/false, yes/no,
    same/different). Relative image paths are relative to the CSV's folder."""
    if not path.is_file():
        raise DatasetError(f"pairs CSV not found: {path}")
    out: list[tuple[str, str, bool]] = []
    with path.open(newline="") as fh:
        for i, row in enumerate(csv.reader(fh), start=1):
            cells = [c.strip() for c in row]
            if not cells or not any(cells) or cells[0].startswith("#"):
                continue
            if i == 1 and [c.lower() for c in cells[:3]] == ["image1", "image2", "same"]:
                continue
            if len(cells) < 3 or cells[2].lower() not in _TRUE | _FALSE:
                raise DatasetError(f"{path}: line {i} is not 'image1,image2,same': {row}")
            a, b = (str((path.parent / c).resolve()) for c in cells[:2])
            out.append((a, b, cells[2].lower() in _TRUE))
    if not out:
        raise DatasetError(f"{path}: no pairs")
    return out


def csv_pairs(
    pipeline: FacePipeline,
    csv_path: Path,
    cache_dir: Path,
    *,
    on_no_face: str = "error",
    progress: Callable[[int], None] | None = None,
) -> PairSet:
    """Pairs of a CSV; an image without a usable face drops its pairs (counted) unless
    ``on_no_face="centre"``."""
    pairs = read_csv_pairs(csv_path)
    paths = sorted({a for a, _, _ in pairs} | {b for _, b, _ in pairs})
    missing = [p for p in paths if not Path(p).is_file()]
    if missing:
        raise DatasetError(f"{csv_path}: {len(missing)} images not found, e.g. {missing[0]}")
    cache = _cache(pipeline, cache_dir, "csv", on_no_face)
    table = embed_images(pipeline, Path("/"), paths, cache, on_no_face, progress)
    d, same, skipped = _distances({k: v.embedding for k, v in table.items()}, pairs)
    hows = [table[p].how for p in paths]
    return PairSet(
        d,
        same,
        dataset=f"csv:{csv_path.name}",
        details={
            "source": "csv",
            "csv": str(csv_path),
            "images": len(paths),
            "no_face_images": sum(h == "assumed-centre" for h in hows),
            "no_face_handling": on_no_face,
            "error_images": sum(h.startswith("error") for h in hows),
            "pairs_skipped": skipped,
        },
    )


def collection_pairs(
    repo: Repository, collection_id: int, max_pairs: int = 20_000, seed: int = 0
) -> PairSet:
    """Genuine pairs of faces within an identity and impostor pairs across identities, from
    the stored embeddings; at most ``max_pairs`` of each kind, sampled with a fixed seed."""
    coll = repo.get_collection_by_id(collection_id)
    face_ids, vectors, _ = repo.all_embeddings(collection_id)
    faces = repo.faces_by_ids(face_ids.tolist())
    keep = np.array([int(f) in faces for f in face_ids], dtype=bool)
    face_ids, vectors = face_ids[keep], vectors[keep].astype(np.float64)
    owner = np.array([faces[int(f)].identity_id for f in face_ids], dtype=np.int64)
    rng = np.random.default_rng(seed)

    groups: dict[int, list[int]] = defaultdict(list)
    for i, ident in enumerate(owner.tolist()):
        groups[ident].append(i)
    genuine = [(a, b) for idx in groups.values() for j, a in enumerate(idx) for b in idx[j + 1 :]]
    n_genuine_all = len(genuine)
    if len(genuine) > max_pairs:
        genuine = [genuine[i] for i in rng.choice(len(genuine), max_pairs, replace=False)]

    n = len(owner)
    n_impostor_all = (n * (n - 1)) // 2 - n_genuine_all
    impostor = _impostor_pairs(owner, n_impostor_all, max_pairs, rng)
    if not genuine or not impostor:
        raise DatasetError(
            f"collection {coll.name!r} cannot be calibrated: it needs at least one identity "
            f"with two faces and two identities ({len(groups)} identities, {n} faces)"
        )
    pairs = [(a, b, True) for a, b in genuine] + [(a, b, False) for a, b in impostor]
    ia = np.array([a for a, _, _ in pairs])
    ib = np.array([b for _, b, _ in pairs])
    d = 1.0 - np.sum(vectors[ia] * vectors[ib], axis=1)
    same = np.array([s for _, _, s in pairs], dtype=bool)
    return PairSet(
        d,
        same,
        dataset=f"collection:{coll.name}",
        details={
            "source": "collection",
            "collection": coll.name,
            "tenant": coll.tenant,
            "collection_id": coll.id,
            "identities": len(groups),
            "faces": n,
            "genuine_pairs_available": n_genuine_all,
            "impostor_pairs_available": n_impostor_all,
            "max_pairs": max_pairs,
            "seed": seed,
        },
    )


def _impostor_pairs(
    owner: np.ndarray, available: int, max_pairs: int, rng: np.random.Generator
) -> list[tuple[int, int]]:
    """Pairs (a < b) of faces of different identities: all ``available`` of them, or a
    sample of ``max_pairs`` drawn with ``rng`` when there are more."""
    n = len(owner)
    if available <= max_pairs:
        return [(a, b) for a in range(n) for b in range(a + 1, n) if owner[a] != owner[b]]
    seen: set[tuple[int, int]] = set()
    while len(seen) < max_pairs:
        a, b = rng.integers(0, n, (2, 2 * max_pairs))
        for x, y in zip(a.tolist(), b.tolist(), strict=True):
            if owner[x] != owner[y]:
                seen.add((min(x, y), max(x, y)))
                if len(seen) == max_pairs:
                    break
    return sorted(seen)


def _tag(prefix: str, path: Path) -> str:
    return f"{prefix}-{hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:8]}"
