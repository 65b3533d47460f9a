"""/metrics: faces enrolled counts every enrollment path, not only the HTTP one."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from identity_service.api import create_app
from identity_service.api import metrics as metrics_module
from identity_service.api.auth import create_api_key
from identity_service.api.metrics import FACES_ENROLLED_TTL_S, Metrics
from identity_service.config import ApiSettings, JobSettings, ModelSettings, Settings
from identity_service.jobs import get_job, submit_enroll_folder
from identity_service.service import import_folder


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("metrics"),
        workers=1,
        models=ModelSettings(embedder="dlib-resnet-v1"),
        jobs=JobSettings(broker_url=None),
        api=ApiSettings(auth=True),
    )
    app = create_app(settings)
    with TestClient(app) as http:
        yield app, http


def _faces_enrolled(http: TestClient) -> float:
    text = http.get("/metrics").text
    assert "# TYPE faceid_faces_enrolled_total counter" in text
    match = re.search(r"^faceid_faces_enrolled_total (\S+)$", text, re.M)
    assert match, text
    return float(match.group(1))


def _folder(root, lfw_image, people: dict[str, list[int]]):
    for person, numbers in people.items():
        (root / person).mkdir(parents=True)
        for n in numbers:
            (root / person / f"{n}.jpg").symlink_to(lfw_image(person, n))
    return root


def test_faces_enrolled_counts_every_path(api, lfw_image, tmp_path):
    app, http = api
    service = app.state.runtime.service
    coll = service.create_collection("staff")
    # The service directly (as the CLI and library users do), a folder import, a job.
    service.enroll("staff", "abel", [lfw_image("Abel_Pacheco", n) for n in (1, 2)])
    folder = _folder(tmp_path / "folder", lfw_image, {"Adam_Sandler": [1, 2]})
    assert import_folder(service, coll, folder).faces_added == 2
    photos = _folder(tmp_path / "job", lfw_image, {"Abdullah_Gul": [1, 2, 3]})
    job = get_job(service, submit_enroll_folder(service, "staff", photos, batch_size=2))
    assert job.status == "succeeded" and job.counts["faces_added"] == 3
    assert _faces_enrolled(http) == 7.0

    # And the synchronous HTTP path, once the cached figure has expired.
    key, _ = create_api_key(service.repo, "default", ["enroll"])
    r = http.post(
        "/v1/collections/staff/enroll",
        data={"external_id": "aaron"},
        files={"images": ("a.jpg", lfw_image("Aaron_Peirsol", 1).read_bytes(), "image/jpeg")},
        headers={"X-API-Key": key},
    )
    assert r.status_code == 200 and len(r.json()["face_ids"]) == 1, r.text
    app.state.runtime.metrics.faces_enrolled.expire()
    assert _faces_enrolled(http) == 8.0

    # A counter: removing faces does not lower it.
    service.delete_identity("staff", "abel")
    assert service.repo.faces_added_total() == 8


def test_faces_enrolled_is_read_at_most_once_per_ttl(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(metrics_module.time, "monotonic", lambda: now[0])
    reads = []

    def source() -> int:
        reads.append(now[0])
        return len(reads)

    m = Metrics()
    assert b"faceid_faces_enrolled_total 0.0" in m.render(dict, lambda: 0)  # no source yet
    assert b"faceid_faces_enrolled_total 1.0" in m.render(dict, lambda: 0, source)
    now[0] += FACES_ENROLLED_TTL_S / 2
    assert b"faceid_faces_enrolled_total 1.0" in m.render(dict, lambda: 0, source)
    now[0] += FACES_ENROLLED_TTL_S
    assert b"faceid_faces_enrolled_total 2.0" in m.render(dict, lambda: 0, source)
    assert len(reads) == 2
