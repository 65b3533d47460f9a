"""``lab/augment.py``, the training views that ``lab/attributes_augment_validation.py``
compared: reproducible and within the stated distribution (its negative result stands on it)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np

_path = Path(__file__).parents[2] / "lab" / "augment.py"
_spec = importlib.util.spec_from_file_location("lab_augment", _path)
augment = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = augment  # dataclasses look their module up there
_spec.loader.exec_module(augment)
Augmentation, Colour = augment.Augmentation, augment.Colour
augmented_chips, draw, recolour = augment.augmented_chips, augment.draw, augment.recolour


def _chip(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.integers(30, 220, (15, 15, 3)).repeat(10, axis=0).repeat(10, axis=1)
    return base.astype(np.uint8)


def test_views_are_reproducible_and_differ_from_each_other():
    chips = np.stack([_chip(1), _chip(2)])
    first = augmented_chips(chips, 4, seed=7)
    assert first.shape == (2, 4, 150, 150, 3) and first.dtype == np.uint8
    np.testing.assert_array_equal(first, augmented_chips(chips, 4, seed=7))
    assert not np.array_equal(first, augmented_chips(chips, 4, seed=8))
    for views in first:
        assert len({v.tobytes() for v in views}) == 4
        assert all(np.abs(v.astype(int) - chips[0]).mean() > 1 for v in views)


def test_draws_stay_within_the_distribution():
    spec = Augmentation()
    rng = np.random.default_rng(0)
    draws = [draw(rng, spec) for _ in range(2000)]
    degrees = np.array([v.degrees for v, _ in draws])
    scale = np.array([1 / v.height for v, _ in draws])
    shifts = np.array([(v.shift_x, v.shift_y) for v, _ in draws])
    factors = np.array([(c.brightness, c.contrast, c.saturation) for _, c in draws])
    assert np.abs(degrees).max() <= 10 and np.abs(degrees).mean() > 4
    assert scale.min() >= 0.9 and scale.max() <= 1.1
    assert np.abs(shifts).max() <= 0.05
    assert factors.min() >= 0.8 and factors.max() <= 1.2
    assert 0.45 < np.mean([v.mirror for v, _ in draws]) < 0.55


def test_recolour():
    chip = _chip(3)
    np.testing.assert_array_equal(recolour(chip, Colour()), chip)
    darker = recolour(chip, Colour(brightness=0.8))
    np.testing.assert_allclose(darker, chip * 0.8, atol=0.51)
    grey = recolour(chip, Colour(saturation=0.0))
    assert np.abs(grey.astype(int) - grey[..., :1]).max() <= 1  # all channels equal
    flat = recolour(chip, Colour(contrast=0.0))
    assert flat.std() < 1  # every pixel at the mean grey
    bright = recolour(np.full((2, 2, 3), 250, np.uint8), Colour(brightness=1.2))
    assert bright.max() == 255  # clipped, not wrapped
