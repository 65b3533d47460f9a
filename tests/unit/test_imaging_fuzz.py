"""Thousands of seeded mutations of real JPEG, PNG, GIF, TIFF, PPM, BMP and WEBP files: every
one decodes or raises a typed image error, never anything else."""

from __future__ import annotations

from collections import Counter

import numpy as np
from image_mutations import corpus

from identity_service.errors import ImageError
from identity_service.imaging import load_image


def test_malformed_headers_from_the_field_are_typed():
    for data in (
        b"P6\n64 64\n99999999999\n",  # PPM with a huge maxval
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR\x00\x00",  # PNG with a truncated IHDR
        b"II*\x00\x08\x00\x00\x00\x01\x00\x00\x01\x04\x00\x01\x00\x00\x00\x00\x00\x00\x00",
    ):
        try:
            load_image(data)
        except ImageError as exc:
            assert exc.code in ("undecodable_image", "unsupported_format", "image_too_large")
        else:
            raise AssertionError(f"decoded {data!r}")


def test_mutated_images_decode_or_raise_typed_errors(lfw_image):
    photo = np.asarray(load_image(lfw_image("Abel_Pacheco", 1))[60:188:2, 60:188:2])
    outcomes: Counter[str] = Counter()
    for fmt, data in corpus(photo, 3500, seed=1):
        try:
            load_image(data)
            outcomes["decoded"] += 1
        except ImageError as exc:  # the typed family; anything else fails the test
            outcomes[exc.code] += 1
        except Exception as exc:
            raise AssertionError(f"{fmt} mutation raised {type(exc).__name__}: {exc}") from exc
    assert sum(outcomes.values()) == 3500
    assert outcomes["decoded"] > 0 and outcomes["undecodable_image"] > 0, outcomes
