"""Calibration on real LFW faces: CSV pairs, a collection's own identities, storing it, and
verify/find using the stored calibration; ``faceid calibrate --json``."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from identity_service import FaceService, Settings
from identity_service.calibration import (
    calibrate,
    calibrate_pairset,
    collection_pairs,
    csv_pairs,
    describe,
    save_calibration,
)
from identity_service.errors import DatasetError

PEOPLE = {
    "Abdullah_Gul": [1, 2, 3, 4],
    "Adam_Sandler": [1, 2, 3],
    "Akhmed_Zakayev": [1, 2],
    "Abel_Pacheco": [1, 2, 3],
}
CSV_ROWS = [
    ("Abel_Pacheco", 1, "Abel_Pacheco", 2, 1),
    ("Adam_Sandler", 1, "Adam_Sandler", 2, 1),
    ("Abdullah_Gul", 1, "Abdullah_Gul", 3, 1),
    ("Abel_Pacheco", 1, "Adam_Sandler", 1, 0),
    ("Abdullah_Gul", 1, "Akhmed_Zakayev", 1, 0),
    ("Adam_Sandler", 2, "Abdullah_Gul", 2, 0),
]


@pytest.fixture(scope="module")
def pairs_csv(tmp_path_factory, lfw_dir):
    path = tmp_path_factory.mktemp("csv") / "pairs.csv"
    lines = ["image1,image2,same"]
    for n1, i1, n2, i2, same in CSV_ROWS:
        a = lfw_dir / "images" / n1 / f"{n1}_{i1:04d}.jpg"
        b = lfw_dir / "images" / n2 / f"{n2}_{i2:04d}.jpg"
        lines.append(f"{a},{b},{same}")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def service(tmp_path_factory, lfw_image):
    svc = FaceService.embedded(Settings(data_dir=tmp_path_factory.mktemp("faceid"), workers=1))
    svc.create_collection("people")
    for person, numbers in PEOPLE.items():
        svc.enroll("people", person, [lfw_image(person, n) for n in numbers])
    yield svc
    svc.close()


def test_csv_source_on_real_pairs(pipeline, pairs_csv, tmp_path):
    pairs = csv_pairs(pipeline, pairs_csv, tmp_path / "cache")
    assert pairs.same.tolist() == [True] * 3 + [False] * 3
    assert pairs.details["pairs_skipped"] == 0 and pairs.details["images"] == 8
    assert pairs.distances[:3].max() < pairs.distances[3:].min()  # easy pairs separate
    cal = calibrate_pairset(pairs, pipeline.model, n_boot=50)
    assert cal.dataset == "csv:pairs.csv" and cal.model == pipeline.model
    assert cal.threshold < pairs.distances[3:].min() and cal.far == 0 and cal.tar == 1
    # A rerun reads the cached embeddings and gives the same distances.
    again = csv_pairs(pipeline, pairs_csv, tmp_path / "cache")
    np.testing.assert_allclose(again.distances, pairs.distances)


def test_collection_source_samples_within_and_across_identities(service):
    coll = service.collection("people")
    full = collection_pairs(service.repo, coll.id)
    # 12 faces: C(4,2)+C(3,2)+C(2,2)+C(3,2) = 13 genuine pairs, 66 - 13 = 53 impostor pairs.
    assert (int(full.same.sum()), int((~full.same).sum())) == (13, 53)
    assert full.details["identities"] == 4 and full.details["faces"] == 12
    capped = collection_pairs(service.repo, coll.id, max_pairs=10, seed=1)
    assert (int(capped.same.sum()), int((~capped.same).sum())) == (10, 10)
    again = collection_pairs(service.repo, coll.id, max_pairs=10, seed=1)
    np.testing.assert_array_equal(capped.distances, again.distances)
    assert np.median(full.distances[full.same]) < np.median(full.distances[~full.same])


def test_stored_calibrations_drive_find_and_verify(service, lfw_image):
    pipe = service.pipeline()
    before = pipe.verify(lfw_image("Adam_Sandler", 1), lfw_image("Adam_Sandler", 2))
    assert "calibration" not in before.threshold_source and before.confidence is None

    # 53 impostor pairs cannot measure FAR 1e-3: refused unless forced.
    with pytest.raises(DatasetError, match="cannot measure FAR"):
        service.calibrate_collection("people", 1e-3, n_boot=20)
    assert service.repo.list_calibrations() == []
    assert service.collection("people").threshold is None
    run = service.calibrate_collection("people", 1e-3, n_boot=100, force=True)
    rec = run.record
    assert rec is not None and rec.collection_id == service.collection("people").id
    assert rec.model == pipe.model and rec.n_pairs == 66
    coll = service.collection("people")
    assert coll.threshold == pytest.approx(run.calibration.threshold)
    in_force = service.threshold_in_force(coll)
    assert in_force.source == describe(rec) and in_force.source.startswith(f"calibration #{rec.id}")
    # find decides 1:N at its own open-set operating point, never at the 1:1 calibration.
    point = service.find("people", lfw_image("Abel_Pacheco", 4), k=2).operating_point
    assert point.target_fpir == 0.01 and point.source.startswith("model prior")
    assert point.threshold != pytest.approx(run.calibration.threshold)
    # A collection's calibration is not the model's: verify still uses the model default.
    assert (
        "calibration"
        not in pipe.verify(
            lfw_image("Adam_Sandler", 1), lfw_image("Adam_Sandler", 2)
        ).threshold_source
    )

    # A model-wide calibration (here from synthetic distances) is used by verify.
    rng = np.random.default_rng(0)
    d = np.concatenate([rng.normal(0.04, 0.015, 300), rng.normal(0.16, 0.03, 3000)])
    same = np.arange(3300) < 300
    cal = calibrate(d, same, model=pipe.model, dataset="synthetic", n_boot=50)
    model_rec = save_calibration(service.repo, cal)
    result = pipe.verify(lfw_image("Adam_Sandler", 1), lfw_image("Adam_Sandler", 2))
    assert result.threshold == pytest.approx(cal.threshold)
    assert result.threshold_source == describe(model_rec)
    assert result.threshold_source.startswith(f"calibration #{model_rec.id}: synthetic, FAR 0.001")
    assert result.confidence == pytest.approx(cal.confidence(result.distance))
    assert result.to_dict()["confidence"] is not None
    assert 0.0 <= result.confidence <= 1.0
    # The collection keeps its own; a new collection of the model takes the model-wide one.
    assert service.threshold_in_force(service.collection("people")).source == describe(rec)
    fresh = service.create_collection("fresh")
    assert service.threshold_in_force(fresh).source == describe(model_rec)
    # An explicit threshold still wins.
    service.repo.set_threshold(fresh.id, 0.05)
    assert service.threshold_in_force(service.collection("fresh")).source == (
        "collection fresh threshold"
    )


def test_collection_without_pairs_is_refused(service, lfw_image):
    service.create_collection("tiny")
    service.enroll("tiny", "Adam_Sandler", [lfw_image("Adam_Sandler", 1)])
    with pytest.raises(DatasetError):
        service.calibrate_collection("tiny")


def test_cli_calibrate_csv_json(tmp_path, pairs_csv, monkeypatch):
    from identity_service.cli import app, calibrate_cmds

    settings = Settings(data_dir=tmp_path / "data", workers=1)
    monkeypatch.setattr(calibrate_cmds, "get_settings", lambda: settings)
    out = tmp_path / "report"
    args = ["calibrate", "--csv", str(pairs_csv), "--out", str(out), "--json", "--workers", "1"]
    refused = CliRunner().invoke(app, [*args, "--bootstrap", "50"])
    assert refused.exit_code != 0  # 3 impostor pairs cannot measure FAR 1e-3
    result = CliRunner().invoke(app, [*args, "--bootstrap", "50", "--far", "0.5"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["dataset"] == "csv:pairs.csv" and data["n_genuine"] == data["n_impostor"] == 3
    assert data["target_far"] == 0.5 and data["details"]["calibration_id"] == 1
    for name in ("calibration.json", "roc.png", "det.png", "distances.png"):
        assert (out / name).stat().st_size > 300
    with FaceService.embedded(settings) as svc:
        [rec] = svc.repo.list_calibrations()
        assert rec.dataset == "csv:pairs.csv" and rec.collection_id is None
        assert rec.report["logistic"]["b"] < 0
    bad = CliRunner().invoke(app, ["calibrate", "--csv", "x.csv", "--collection", "c"])
    assert bad.exit_code != 0
