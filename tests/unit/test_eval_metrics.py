"""The accuracy interval the attribute figures carry: known binomial spreads, and resampling
by person widening it when a person's images fail together."""

from __future__ import annotations

import math

import numpy as np
import pytest

from identity_service.calibration.metrics import accuracy_interval
from identity_service.training.attributes.train import accuracy_of


def test_interval_of_independent_items_matches_the_binomial_spread() -> None:
    correct = np.arange(400) % 5 != 0  # 80 % of 400
    lo, hi = accuracy_interval(correct)
    half = 1.96 * math.sqrt(0.8 * 0.2 / 400)  # 0.039
    assert lo < 0.8 < hi
    assert (hi - lo) / 2 == pytest.approx(half, rel=0.15)


def test_groups_that_fail_together_widen_the_interval() -> None:
    # 20 people with 20 images each; 4 people wrong on every image: 80 % either way
    groups = np.repeat(np.arange(20), 20)
    correct = groups >= 4
    by_image = accuracy_interval(correct)
    by_person = accuracy_interval(correct, groups)
    half = 1.96 * math.sqrt(0.8 * 0.2 / 20)  # 20 independent draws, not 400: 0.175
    assert (by_person[1] - by_person[0]) / 2 == pytest.approx(half, rel=0.2)
    assert by_person[1] - by_person[0] > 3 * (by_image[1] - by_image[0])


def test_interval_edges_and_reproducibility() -> None:
    assert accuracy_interval(np.ones(50, bool)) == (1.0, 1.0)
    assert all(math.isnan(v) for v in accuracy_interval(np.zeros(0, bool)))
    correct = np.random.default_rng(3).random(300) < 0.9
    assert accuracy_interval(correct, seed=7) == accuracy_interval(correct, seed=7)


def test_accuracy_of_reports_the_interval() -> None:
    y = np.array([0, 1, 1, 0, 1, 0, 0, 1])
    pred = np.array([0, 1, 1, 0, 1, 0, 1, 0])
    out = accuracy_of(pred, y, groups=np.array([0, 0, 1, 1, 2, 2, 3, 3]))
    assert out["accuracy"] == 0.75 and out["n"] == 8
    lo, hi = out["ci95"]
    assert lo <= 0.75 <= hi and hi == 1.0
