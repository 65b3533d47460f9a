"""Calibration core on synthetic genuine/impostor distances with known answers."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from identity_service.calibration import (
    Calibration,
    InForce,
    bootstrap,
    calibrate,
    equal_density_point,
    fit_logistic,
    logistic,
    read_csv_pairs,
    roc_curve,
    write_report,
)
from identity_service.calibration.metrics import tar_at_far
from identity_service.calibration.sources import PairSet
from identity_service.errors import DatasetError, FaceIDError

# Genuine ~ N(0.30, 0.08), impostor ~ N(0.70, 0.08): equal variances, so the log density ratio
# is linear and meets zero at the midpoint 0.50 with slope -(0.70 - 0.30) / 0.08**2.
MU_G, MU_I, SD = 0.30, 0.70, 0.08
Z_99 = 2.3263478740408408  # standard normal quantile at 0.99


def _phi(x: float) -> float:
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


def synthetic(n_g: int = 4000, n_i: int = 20000, seed: int = 1):
    rng = np.random.default_rng(seed)
    d = np.concatenate([rng.normal(MU_G, SD, n_g), rng.normal(MU_I, SD, n_i)])
    same = np.concatenate([np.ones(n_g, bool), np.zeros(n_i, bool)])
    return d, same


def test_threshold_far_tar_match_the_known_distributions():
    d, same = synthetic()
    cal = calibrate(d, same, model="m@1", dataset="synthetic", target_far=1e-2, n_boot=400)
    true_threshold = MU_I - Z_99 * SD
    true_tar = _phi((true_threshold - MU_G) / SD)
    assert cal.threshold == pytest.approx(true_threshold, abs=0.01)
    assert cal.far <= 1e-2 and cal.far == pytest.approx(1e-2, abs=1e-3)
    assert cal.tar == pytest.approx(true_tar, abs=0.01)
    # The 95% intervals contain the truth and the point estimate.
    assert cal.threshold_ci[0] <= true_threshold <= cal.threshold_ci[1]
    assert cal.tar_ci[0] <= true_tar <= cal.tar_ci[1]
    assert cal.threshold_ci[0] <= cal.threshold <= cal.threshold_ci[1]
    assert (cal.n_genuine, cal.n_impostor, cal.n_pairs) == (4000, 20000, 24000)
    assert cal.auc > 0.99
    # The same choice as calibration.metrics.tar_at_far.
    op = tar_at_far(d, same, 1e-2)
    assert (cal.threshold, cal.far, cal.tar) == (op.threshold, op.far, op.tar)


def test_ci_covers_the_truth_across_datasets():
    true_threshold = MU_I - Z_99 * SD
    covered = 0
    for seed in range(6):
        d, same = synthetic(n_g=1000, n_i=5000, seed=100 + seed)
        cal = calibrate(d, same, model="m", dataset="s", target_far=1e-2, n_boot=300, seed=seed)
        covered += cal.threshold_ci[0] <= true_threshold <= cal.threshold_ci[1]
    assert covered >= 5


def test_logistic_is_decreasing_and_half_at_equal_density():
    d, same = synthetic()
    a, b = fit_logistic(d, same)
    assert b < 0
    xs = np.linspace(0, 1, 50)
    p = logistic(a, b, xs)
    assert np.all(np.diff(p) < 0)
    midpoint = (MU_G + MU_I) / 2
    assert equal_density_point(a, b) == pytest.approx(midpoint, abs=0.02)
    assert logistic(a, b, midpoint) == pytest.approx(0.5, abs=0.1)
    assert b == pytest.approx(-(MU_I - MU_G) / SD**2, rel=0.25)
    # Unbalanced classes do not move the 0.5 point (the classes carry equal weight).
    a2, b2 = fit_logistic(d[: 4000 + 2000], same[: 4000 + 2000])
    assert equal_density_point(a2, b2) == pytest.approx(midpoint, abs=0.03)


def test_separable_data_gives_a_finite_fit():
    a, b = fit_logistic(np.array([0.1, 0.2, 0.5, 0.6]), np.array([1, 1, 0, 0], bool))
    assert math.isfinite(a) and math.isfinite(b) and b < 0
    assert logistic(a, b, 0.1) > 0.5 > logistic(a, b, 0.6)


def test_roc_curve_and_bootstrap_are_consistent_and_seeded():
    d, same = synthetic(500, 2000)
    thr, far, tar = roc_curve(d, same)
    assert far[0] == tar[0] == 0 and far[-1] == tar[-1] == 1
    assert np.all(np.diff(thr) > 0) and np.all(np.diff(far) >= 0) and np.all(np.diff(tar) >= 0)
    g, i = d[same], d[~same]
    t1, r1 = bootstrap(g, i, 1e-2, n_boot=50, seed=3)
    t2, r2 = bootstrap(g, i, 1e-2, n_boot=50, seed=3, chunk_cells=7_000)  # other chunking
    np.testing.assert_array_equal(r1, r2)
    np.testing.assert_array_equal(t1, t2)
    assert np.all((r1 >= 0) & (r1 <= 1))
    assert not np.array_equal(t1, bootstrap(g, i, 1e-2, n_boot=50, seed=4)[0])


def test_bad_inputs_are_refused():
    with pytest.raises(FaceIDError):
        calibrate(np.array([0.1, 0.2]), np.array([True, True]), model="m", dataset="d")
    with pytest.raises(FaceIDError):
        calibrate(np.array([0.1, np.nan]), np.array([True, False]), model="m", dataset="d")
    with pytest.raises(FaceIDError):
        calibrate(np.array([0.1, 0.5]), np.array([True, False]), model="m", dataset="d",
                  target_far=0)  # fmt: skip


def test_too_few_impostors_are_flagged():
    cal = calibrate(
        np.array([0.1, 0.2, 0.5, 0.6]), np.array([1, 1, 0, 0], bool), model="m", dataset="d",
        n_boot=20,
    )  # fmt: skip
    assert cal.threshold < 0.5 and cal.far == 0 and cal.tar == 1
    assert "cannot measure FAR" in str(cal.details["warning"])


def test_report_round_trip_plots_and_in_force(tmp_path):
    d, same = synthetic(300, 1500)
    cal = calibrate(d, same, model="m@1", dataset="synthetic", target_far=1e-2, n_boot=100)
    data = cal.to_dict()
    back = Calibration.from_dict(json.loads(json.dumps(data)))
    assert back.threshold == cal.threshold and back.logistic == cal.logistic
    assert back.threshold_ci == cal.threshold_ci
    files = write_report(cal, PairSet(d, same, "synthetic"), tmp_path / "out")
    assert {f.name for f in files} == {"calibration.json", "roc.png", "det.png", "distances.png"}
    for f in files:
        assert f.stat().st_size > 300
    assert files[1].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = json.loads((tmp_path / "out" / "calibration.json").read_text())
    assert report["threshold"] == cal.threshold and report["n_pairs"] == 1800

    class Rec:
        report = data

    in_force = InForce(cal.threshold, "x", Rec())  # type: ignore[arg-type]
    assert in_force.confidence(0.1) > 0.9 > 0.1 > in_force.confidence(0.9)  # type: ignore[operator]
    assert InForce(0.5, "default").confidence(0.1) is None


def test_read_csv_pairs(tmp_path):
    path = tmp_path / "pairs.csv"
    path.write_text("image1,image2,same\na.jpg,b.jpg,1\n# note\na.jpg,/x/c.jpg,different\n\n")
    assert read_csv_pairs(path) == [
        (str(tmp_path / "a.jpg"), str(tmp_path / "b.jpg"), True),
        (str(tmp_path / "a.jpg"), "/x/c.jpg", False),
    ]
    path.write_text("a.jpg,b.jpg,maybe\n")
    with pytest.raises(DatasetError):
        read_csv_pairs(path)
    with pytest.raises(DatasetError):
        read_csv_pairs(tmp_path / "missing.csv")
