"""Seeded mutations of small real images in every supported format: the fuzz corpus that
``tests/unit/test_imaging_fuzz.py`` runs in CI and ``bench/imaging_fuzz.py`` runs at scale."""

from __future__ import annotations

import io
from collections.abc import Iterator

import numpy as np
from PIL import Image

FORMATS = {
    "JPEG": {},
    "PNG": {},
    "GIF": {},
    "TIFF": {},
    "PPM": {},
    "BMP": {},
    "WEBP": {"quality": 80},
}


def seeds(photo: np.ndarray) -> dict[str, bytes]:
    """``photo`` (RGB uint8) encoded once in each format."""
    out = {}
    for fmt, options in FORMATS.items():
        buffer = io.BytesIO()
        Image.fromarray(photo).save(buffer, format=fmt, **options)
        out[fmt] = buffer.getvalue()
    return out


def mutate(data: bytes, rng: np.random.Generator) -> bytes:
    """One mutation: flipped bytes, a header field overwritten with extreme values, a
    truncation, an inserted or deleted run, or several of these."""
    buf = bytearray(data)
    for _ in range(int(rng.integers(1, 4))):
        kind = int(rng.integers(0, 6))
        if not buf:
            break
        if kind == 0:  # flip a few bytes anywhere
            for pos in rng.integers(0, len(buf), int(rng.integers(1, 8))):
                buf[int(pos)] = int(rng.integers(0, 256))
        elif kind == 1:  # the header, where sizes and counts live
            head = min(len(buf), 64)
            for pos in rng.integers(0, head, int(rng.integers(1, 4))):
                buf[int(pos)] = int(rng.choice([0, 1, 0x7F, 0x80, 0xFF]))
        elif kind == 2:  # truncate
            del buf[int(rng.integers(0, len(buf))) :]
        elif kind == 3:  # insert junk
            pos = int(rng.integers(0, len(buf) + 1))
            buf[pos:pos] = rng.integers(0, 256, int(rng.integers(1, 64)), dtype=np.uint8).tobytes()
        elif kind == 4:  # delete a run
            pos = int(rng.integers(0, len(buf)))
            del buf[pos : pos + int(rng.integers(1, 64))]
        else:  # a big decimal number in a text header (PPM), or digits anywhere
            pos = int(rng.integers(0, min(len(buf), 32)))
            buf[pos:pos] = str(int(rng.integers(1, 10**12))).encode()
    return bytes(buf)


def corpus(photo: np.ndarray, n: int, seed: int = 0) -> Iterator[tuple[str, bytes]]:
    """``n`` (format, mutated bytes) pairs, the formats in turn, from a fixed seed."""
    originals = seeds(photo)
    rng = np.random.default_rng(seed)
    names = list(originals)
    for i in range(n):
        fmt = names[i % len(names)]
        yield fmt, mutate(originals[fmt], rng)
