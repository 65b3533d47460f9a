"""The job verbs of the CLI in the embedded default (no broker: jobs run in the CLI process)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from identity_service.cli import app
from identity_service.errors import FaceIDError


@pytest.fixture
def env(tmp_path, monkeypatch, lfw_image):
    monkeypatch.setenv("FACEID_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("FACEID_WORKERS", "1")
    monkeypatch.delenv("FACEID_BROKER_URL", raising=False)
    monkeypatch.delenv("FACEID_DATABASE_URL", raising=False)
    root = tmp_path / "photos"
    for person in ("Adam_Sandler", "Abel_Pacheco"):
        (root / person).mkdir(parents=True)
        for i in (1, 2):
            (root / person / f"{i}.jpg").symlink_to(lfw_image(person, i))
    return root


def test_enroll_job_jobs_and_job(env):
    runner = CliRunner()
    result = runner.invoke(
        app, ["enroll-job", str(env), "-c", "cli", "--batch-size", "3", "--json"]
    )
    assert result.exit_code == 0, result.output
    job = json.loads(result.output)
    assert job["status"] == "succeeded" and job["counts"]["faces_added"] == 4
    listed = json.loads(runner.invoke(app, ["jobs", "--json"]).output)
    assert [j["id"] for j in listed] == [job["id"]]
    shown = runner.invoke(app, ["job", job["id"]])
    assert shown.exit_code == 0 and "succeeded" in shown.output and "4 faces added" in shown.output
    reindex = runner.invoke(app, ["reindex", "cli", "--json"])
    assert json.loads(reindex.output)["counts"]["faces"] == 4


def test_worker_needs_a_broker(env):
    result = CliRunner().invoke(app, ["worker"])
    assert isinstance(result.exception, FaceIDError) and "FACEID_BROKER_URL" in str(
        result.exception
    )
    bad = CliRunner().invoke(app, ["worker", "--device", "tpu"])
    assert bad.exit_code != 0
