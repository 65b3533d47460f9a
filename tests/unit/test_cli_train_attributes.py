"""``faceid train-attributes --actions emotion`` end to end on a small FER2013 sample: the head
and the CNN are trained, measured together and saved; ``--cnn-epochs 0`` drops the CNN."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from identity_service.attributes import HEAD_FILES, describe_heads
from identity_service.cli import app
from identity_service.config import get_settings


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("FACEID_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("FACEID_ATTRIBUTE_MODELS", "trained")  # describe the set just trained
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def train(*args: str) -> dict:
    argv = ["train-attributes", "--actions", "emotion", "--fer-limit", "10", "--workers", "1"]
    result = CliRunner().invoke(app, [*argv, *args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_emotion_training_saves_the_head_and_the_cnn_measured_together(data_dir):
    report = train("--cnn-epochs", "1")
    assert set(report["files"]) == {"emotion", "emotion-cnn"}
    assert report["emotion_cnn_recipe"]["epochs"] == 1
    metrics = report["heldout_metrics"]["emotion"]
    assert metrics["fer2013_publictest"]["n"] == 10
    assert set(metrics["members"]) == {"head", "cnn"}
    info = {i.action: i for i in describe_heads(get_settings())}
    assert info["emotion-cnn"].present and info["emotion-cnn"].provenance["epochs"] == 1
    assert str(data_dir) in report["files"]["emotion-cnn"]

    report = train("--cnn-epochs", "0")
    assert set(report["files"]) == {"emotion"} and report["emotion_cnn_recipe"] is None
    assert set(report["heldout_metrics"]["emotion"]["members"]) == {"head"}
    assert not (data_dir / "cache" / "models" / HEAD_FILES["emotion-cnn"]).exists()


@pytest.mark.parametrize("option", ["--cnn-epochs", "--tuned-epochs"])
def test_negative_epochs_is_a_usage_error(data_dir, option):
    result = CliRunner().invoke(app, ["train-attributes", option, "-1"])
    assert result.exit_code == 2
