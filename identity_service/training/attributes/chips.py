"""The tuned network's training input: per image, the centre-most face's dlib chip (as
:func:`identity_service.calibration.cache.embed_images` picks it: the face assumed at the centre
when none is detected) run through the frozen part of dlib's ResNet, with its mirror image;
computed once and cached.

Chips are cut in the pipeline's ``workers`` processes; the frozen layers run in this one.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...calibration.cache import assumed_centre_detection
from ...embed.dlib_format import CHIP_SIZE
from ...errors import FaceIDError
from ...files import save_npz_atomically
from ...imaging import load_image
from ...models import MODELS
from ...pipeline import FacePipeline
from .chunk_pool import map_chunks
from .tuned import TunedNetwork

CHUNK = 128
SAVE_EVERY_S = 300.0  # each save rewrites the whole table (hundreds of MB)
Chip = tuple[np.ndarray, str]  # (150, 150, 3) uint8, how the face was found


@dataclass
class FrozenRows:
    acts: np.ndarray  # (N, 2, C, H, W) float16
    how: list[str]  # "detected" | "assumed-centre" | "error:<code>"

    @property
    def ok(self) -> np.ndarray:
        return np.array([not h.startswith("error") for h in self.how], bool)


def _cache_file(cache_dir: Path, pipeline: FacePipeline, network: TunedNetwork) -> Path:
    key = f"{pipeline.detector.name}|{MODELS['dlib-resnet-v1'].tag}|cut{network.cut}|frozen-v1"
    return cache_dir / f"tuned-frozen-{hashlib.sha256(key.encode()).hexdigest()[:10]}.npz"


def _load(path: Path) -> dict[str, tuple[np.ndarray, str]]:
    if not path.is_file():
        return {}
    try:
        with np.load(path, allow_pickle=False) as data:
            rows = zip(data["keys"], data["acts"], data["how"], strict=True)
            return {str(k): (a, str(h)) for k, a, h in rows}
    except (OSError, ValueError, KeyError):
        return {}  # a damaged cache is only a slower run


def _save(path: Path, table: dict[str, tuple[np.ndarray, str]]) -> None:
    keys = sorted(table)
    save_npz_atomically(
        path,
        keys=np.array(keys),
        acts=np.stack([table[k][0] for k in keys]),
        how=np.array([table[k][1] for k in keys]),
    )


def frozen_activations(
    pipeline: FacePipeline,
    network: TunedNetwork,
    images: dict[str, Path],
    cache_dir: Path,
    progress: Callable[[int], None] | None = None,
) -> FrozenRows:
    """``images`` maps a stable key to each file; rows come back in its order."""
    path = _cache_file(cache_dir, pipeline, network)
    table = _load(path)
    todo = [k for k in images if k not in table]
    chunks = [todo[s : s + CHUNK] for s in range(0, len(todo), CHUNK)]
    if chunks:
        saved = time.monotonic()
        results = map_chunks(pipeline, [[images[k] for k in c] for c in chunks], _chips_of)
        for n, (keys, chips) in enumerate(zip(chunks, results, strict=True)):
            acts = network.frozen(np.stack([c for c, _ in chips]))
            for key, act, (_, how) in zip(keys, acts, chips, strict=True):
                table[key] = (act, how)
            if time.monotonic() - saved > SAVE_EVERY_S or n == len(chunks) - 1:
                _save(path, table)
                saved = time.monotonic()
            if progress:
                progress(len(keys))
    rows = [table[k] for k in images]
    return FrozenRows(np.stack([a for a, _ in rows]), [h for _, h in rows])


def face_chips(pipeline: FacePipeline, paths: list[Path]) -> np.ndarray:
    """``(N, 150, 150, 3)``: each image's chip, cut as :func:`frozen_activations` cuts it
    (not cached; for comparing where the network is cut)."""
    chunks = [paths[s : s + CHUNK] for s in range(0, len(paths), CHUNK)]
    rows = [chip for part in map_chunks(pipeline, chunks, _chips_of) for chip, _ in part]
    return np.stack(rows) if rows else np.zeros((0, CHIP_SIZE, CHIP_SIZE, 3), np.uint8)


def _chips_of(pipeline: FacePipeline, _state: None, chunk: list[Path]) -> list[Chip]:
    out: list[Chip] = []
    for image in chunk:
        try:
            array = load_image(image)
            faces = pipeline.extract_faces(array, 1)
            if faces:
                out.append((faces[0].crop, "detected"))
                continue
            det = assumed_centre_detection(array.shape[1], array.shape[0])
            out.append((pipeline.embedder.crop(array, det), "assumed-centre"))
        except FaceIDError as exc:  # an unreadable file is recorded, not fatal
            out.append((np.zeros((CHIP_SIZE, CHIP_SIZE, 3), np.uint8), f"error:{exc.code}"))
    return out
