from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from identity_service import FacePipeline, get_settings
from identity_service.calibration.sources import read_pairs
from identity_service.errors import NoFaceError, UndecodableImageError
from identity_service.models import get_model


def test_verify_same_and_different(pipeline, lfw_image):
    same = pipeline.verify(lfw_image("Abel_Pacheco", 1), lfw_image("Abel_Pacheco", 4))
    diff = pipeline.verify(lfw_image("Abel_Pacheco", 1), lfw_image("Akhmed_Zakayev", 1))
    assert same.verified and not diff.verified
    assert same.distance < diff.distance
    assert same.threshold == diff.threshold > 0 and same.threshold_source
    assert same.model == pipeline.model
    assert {"decode", "detect_align", "embed", "total"} <= set(same.timings_ms)
    assert same.to_dict()["faces"][0]["box"]


def test_verify_without_a_face_is_a_typed_error(pipeline, lfw_image):
    blank = np.full((250, 250, 3), 120, np.uint8)
    with pytest.raises(NoFaceError, match="image 2"):
        pipeline.verify(lfw_image("Abel_Pacheco", 1), blank)
    with pytest.raises(UndecodableImageError):
        pipeline.verify(b"garbage bytes", lfw_image("Abel_Pacheco", 1))


def test_represent_returns_every_face_centre_first(pipeline, lfw_image):
    from identity_service.imaging import load_image

    tiles = [load_image(lfw_image(n, 1)) for n in ("Abel_Pacheco", "Akhmed_Zakayev")]
    canvas = np.zeros((250, 750, 3), np.uint8)
    canvas[:, :250], canvas[:, 500:] = tiles
    canvas[:, 250:500] = load_image(lfw_image("Adam_Sandler", 1))
    faces = pipeline.represent(canvas)
    assert len(faces) == 3
    assert [f.index for f in faces] == [0, 1, 2]
    assert 250 <= faces[0].box.center[0] <= 500  # the centre tile comes first
    single = pipeline.represent(lfw_image("Adam_Sandler", 1))[0]
    assert float(faces[0].embedding @ single.embedding) > 0.98


def test_represent_batch_keeps_order_reports_errors_and_matches_workers(lfw_image):
    images = [
        lfw_image("Abel_Pacheco", 1),
        b"not an image",
        np.full((100, 100, 3), 90, np.uint8),
        lfw_image("Akhmed_Zakayev", 1),
    ] + [lfw_image("Abdullah_Gul", k) for k in range(1, 5)]
    one = FacePipeline(workers=1).represent_batch(images, chunk=3)
    with FacePipeline(workers=2) as two_proc:
        two = two_proc.represent_batch(images, chunk=3)
    assert isinstance(one[1], UndecodableImageError) and isinstance(one[2], NoFaceError)
    assert type(two[1]) is type(one[1]) and type(two[2]) is type(one[2])
    for a, b in zip(one, two, strict=True):
        if isinstance(a, list):
            assert np.allclose(a[0].embedding, b[0].embedding, atol=1e-5)


def test_small_real_accuracy_check(pipeline, lfw_dir):
    """100 real LFW pairs (50 same, 50 different, fold 1) at the shipped threshold: >= 97%.

    A pair where no face is found counts as a wrong answer."""
    pairs = read_pairs(lfw_dir / "pairs.txt")
    chosen = [p for p in pairs if p.fold == 0 and p.same][:50]
    chosen += [p for p in pairs if p.fold == 0 and not p.same][:50]
    correct = 0
    same_d, diff_d = [], []
    for pair in chosen:
        try:
            result = pipeline.verify(
                lfw_dir / "images" / pair.image1, lfw_dir / "images" / pair.image2
            )
        except NoFaceError:
            continue
        correct += result.verified == pair.same
        (same_d if pair.same else diff_d).append(result.distance)
    assert correct / len(chosen) >= 0.97, correct
    assert np.median(same_d) < np.median(diff_d)


def test_cli_verify_json_and_errors(lfw_image, tmp_path):
    from identity_service.cli import app

    runner = CliRunner()
    a, b = str(lfw_image("Abel_Pacheco", 1)), str(lfw_image("Abel_Pacheco", 4))
    result = runner.invoke(app, ["verify", a, b, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["verified"] is True
    result = runner.invoke(app, ["represent", a, "--json"])
    default_dim = get_model(get_settings().models.embedder).dim
    assert len(json.loads(result.output)["faces"][0]["embedding"]) == default_dim
    result = runner.invoke(app, ["detect", a, "--json", "--detector", "yunet"])
    assert json.loads(result.output)["detector"] == "yunet"


def test_cli_main_prints_typed_error_and_exits_1(tmp_path):
    import subprocess
    import sys

    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff garbage")
    proc = subprocess.run(
        [sys.executable, "-m", "identity_service", "verify", str(bad), str(bad)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1
    assert "undecodable_image" in proc.stderr and "Traceback" not in proc.stderr
