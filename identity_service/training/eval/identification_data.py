"""The images of the 1:N protocol and their embeddings: LFW people and UTKFace faces, read in
place from the shared folder, one cached embedding per image and pipeline."""

from __future__ import annotations

import multiprocessing
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...calibration.cache import EmbeddingCache, assumed_centre_detection, embed_images
from ...config import Settings
from ...errors import DatasetError, FaceIDError
from ...files import save_npz_atomically
from ...imaging import load_image
from ...pipeline import FacePipeline


@dataclass(frozen=True)
class Image:
    source: str  # "lfw" | "utkface"
    relpath: str  # under the source's image folder
    person: str  # LFW name; a UTKFace file is a person of its own


def list_images(shared_dir: Path) -> list[Image]:
    lfw = shared_dir / "data" / "lfw" / "images"
    utk = shared_dir / "data" / "utkface"
    if not lfw.is_dir():
        raise DatasetError(f"LFW images not found under {lfw} (set FACEID_SHARED_DIR)")
    images = [
        Image("lfw", str(p.relative_to(lfw)), p.parent.name) for p in sorted(lfw.glob("*/*.jpg"))
    ]
    if utk.is_dir():
        images += [Image("utkface", p.name, f"utkface:{p.name}") for p in sorted(utk.glob("*.jpg"))]
    return images


def by_person(images: list[Image]) -> dict[str, list[Image]]:
    people: dict[str, list[Image]] = defaultdict(list)
    for image in images:
        people[image.person].append(image)
    return people


def embed_all(
    pipeline: FacePipeline,
    shared_dir: Path,
    images: list[Image],
    cache_dir: Path,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """``(len(images), dim)`` embeddings of each image's centre-most face (an LFW or UTKFace
    photo where nothing is detected gets the face assumed at its centre), cached per pipeline."""
    key = f"{pipeline.detector.name}|{pipeline.model}|centre"
    out = np.empty((len(images), pipeline.embedder.dim), np.float32)
    for source, folder in (
        ("lfw", shared_dir / "data" / "lfw" / "images"),
        ("utkface", shared_dir / "data" / "utkface"),
    ):
        rows = [i for i, image in enumerate(images) if image.source == source]
        if not rows:
            continue
        cache = EmbeddingCache(
            EmbeddingCache.file_for(cache_dir, f"ident-{source}", key), pipeline.embedder.dim
        )
        table = embed_images(
            pipeline, folder, [images[i].relpath for i in rows], cache, progress=progress
        )
        out[rows] = np.stack([table[images[i].relpath].embedding for i in rows])
    return out


# -- the peer: face_recognition's embeddings (dlib HOG, dlib's ResNet, one view, raw) -----------
_PEER: FacePipeline | None = None


def _peer_init(settings: Settings) -> None:
    global _PEER
    _PEER = FacePipeline("dlib-hog", "dlib-resnet-v1", settings=settings, workers=1)


def _peer_chunk(paths: list[Path]) -> np.ndarray:
    assert _PEER is not None
    crops = []
    for path in paths:
        try:
            array = load_image(path)
        except FaceIDError:
            array = np.zeros((250, 250, 3), np.uint8)
        faces = _PEER.extract_faces(array, max_faces=1)
        det = (
            faces[0].detection
            if faces
            else assumed_centre_detection(array.shape[1], array.shape[0])
        )
        crops.append(_PEER.embedder.crop(array, det))
    # face_recognition compares dlib's descriptors as they come out, unnormalised.
    return _PEER.embedder._forward(crops)


def embed_peer(
    shared_dir: Path, images: list[Image], cache_dir: Path, settings: Settings, workers: int = 2
) -> np.ndarray:
    """face_recognition's descriptors of every image (raw dlib ResNet output, as its 0.6
    Euclidean rule expects them), cached."""
    folders = {
        "lfw": shared_dir / "data" / "lfw" / "images",
        "utkface": shared_dir / "data" / "utkface",
    }
    keys = [f"{im.source}/{im.relpath}" for im in images]
    cache = cache_dir / "ident-peer-face-recognition.npz"
    if cache.is_file():
        data = np.load(cache, allow_pickle=False)
        if list(data["keys"]) == keys:
            return data["vectors"]
    paths = [folders[im.source] / im.relpath for im in images]
    chunks = [paths[i : i + 64] for i in range(0, len(paths), 64)]
    with ProcessPoolExecutor(
        workers,
        mp_context=multiprocessing.get_context("fork"),
        initializer=_peer_init,
        initargs=(settings,),
    ) as pool:
        vectors = np.concatenate(list(pool.map(_peer_chunk, chunks)))
    save_npz_atomically(cache, keys=np.array(keys), vectors=vectors)
    return vectors
