"""The CLI verbs with ``--server``: a real ``faceid serve`` and worker (see test_http_server),
driven through the ``faceid`` command line, JSON out, real LFW faces."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from test_http_server import REPO, Server, server  # noqa: F401  (the fixture)
from typer.testing import CliRunner

from identity_service.cli import app

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _cli(srv: Server, key: str, *args: str) -> dict | list:
    result = CliRunner().invoke(
        app, [*args, "--json"], env={"FACEID_SERVER": srv.url, "FACEID_API_KEY": key}
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def _photos(root: Path, lfw_image, people: tuple[str, ...], shots: tuple[int, ...]) -> Path:
    for person in people:
        (root / person).mkdir(parents=True)
        for n in shots:
            (root / person / f"{n}.jpg").symlink_to(lfw_image(person, n))
    return root


def test_cli_verbs_against_a_server(server: Server, lfw_image, tmp_path: Path):  # noqa: F811
    key = server.key("acme", "admin")
    upload = _photos(tmp_path / "up", lfw_image, ("Abel_Pacheco", "Adam_Sandler"), (1, 2))
    report = _cli(server, key, "enroll", str(upload), "-c", "staff")
    assert report["identities"] == 2 and report["faces_added"] == 4 and not report["failures"]
    again = _cli(server, key, "enroll", str(upload), "-c", "staff")
    assert again["faces_added"] == 0 and again["duplicates"] == 4
    one = [str(lfw_image("Abdullah_Gul", n)) for n in (1, 2)]
    report = _cli(server, key, "enroll", *one, "--id", "gul", "--name", "Gul", "-c", "staff")
    assert report["identities"] == 1 and report["faces_added"] == 2

    # A folder on the server, as a job followed to the end.
    served = _photos(tmp_path / "srv", lfw_image, ("Adrien_Brody",), (1, 2))
    job = _cli(server, key, "enroll", str(served), "-c", "staff", "--job", "--batch-size", "1")
    assert job["status"] == "succeeded" and job["counts"]["faces_added"] == 2, job

    for person, expected in (("Abel_Pacheco", "Abel_Pacheco"), ("Abdullah_Gul", "gul")):
        found = _cli(server, key, "find", str(lfw_image(person, 3)), "-c", "staff", "-k", "2")
        assert found["matches"][0]["external_id"] == expected and found["matches"][0]["accepted"]
    abel = str(lfw_image("Abel_Pacheco", 3))
    same = _cli(server, key, "verify", abel, str(lfw_image("Abel_Pacheco", 1)))
    assert same["verified"] is True
    other = _cli(server, key, "verify", abel, one[0])
    assert other["verified"] is False and other["distance"] > same["distance"]
    faces = _cli(server, key, "represent", str(lfw_image("Adam_Sandler", 4)))["faces"]
    assert len(faces[0]["embedding"]) == 128
    vector = tmp_path / "adam.json"  # embedded elsewhere: the probe is the embedding itself
    vector.write_text(json.dumps(faces[0]["embedding"]))
    found = _cli(server, key, "find", "--embedding", str(vector), "-c", "staff", "-k", "1")
    assert found["matches"][0]["external_id"] == "Adam_Sandler", found
    adam = str(lfw_image("Adam_Sandler", 3))
    analysed = _cli(server, key, "analyze", adam, "--actions", "emotion")
    assert analysed["faces"][0]["emotion"]["value"]

    reindex = _cli(server, key, "reindex", "staff")
    assert reindex["status"] == "succeeded" and reindex["counts"]["faces"] == 8
    listed = _cli(server, key, "jobs")
    assert {job["id"], reindex["id"]} <= {j["id"] for j in listed}
    shown = _cli(server, key, "job", job["id"])
    assert shown["counts"]["faces_added"] == 2 and shown["error_list"] == []


def test_cli_bad_api_key_is_a_clean_error(server: Server, lfw_image):  # noqa: F811
    args = ["find", str(lfw_image("Abel_Pacheco", 1)), "--server", server.url]
    proc = subprocess.run(
        [sys.executable, "-m", "identity_service", *args, "--api-key", "fid_wrong"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stderr
    assert "unauthorized" in proc.stderr and server.url in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
