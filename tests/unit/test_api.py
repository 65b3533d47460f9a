"""The HTTP API in-process (FastAPI TestClient, SQLite in a tmp data_dir, real LFW faces),
driven mostly through the typed client."""

from __future__ import annotations

import base64
import json
import re
import time

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from identity_service.api.auth import create_api_key
from identity_service.api.errors import (
    AuthenticationError,
    LimitExceededError,
    PermissionDeniedError,
    ValidationError,
)
from identity_service.client import FaceIDClient
from identity_service.errors import (
    InvalidParameterError,
    ModelMismatchError,
    NoFaceError,
    UnknownCollectionError,
    UnknownIdentityError,
)


def client(api, key: str | None) -> FaceIDClient:
    app, _ = api
    return FaceIDClient("http://testserver", api_key=key, http_client=TestClient(app))


def test_auth_missing_invalid_scope_and_revoked(api, keys, people):
    _, http = api
    assert http.get("/v1/collections").json()["error"]["code"] == "unauthorized"
    bad = http.get("/v1/collections", headers={"X-API-Key": "fid_nope"})
    assert bad.status_code == 401
    with pytest.raises(PermissionDeniedError):
        client(api, keys["a_query"]).create_collection("nope")
    with pytest.raises(PermissionDeniedError):
        client(api, keys["a_query"]).delete_identity(people, "abel")
    repo = api[0].state.runtime.service.repo
    token, record = create_api_key(repo, "acme", ["query"])
    assert client(api, token).collections().total == 1
    repo.revoke_api_key(record.id)
    time.sleep(api[0].state.runtime.settings.index.poll_interval * 1.5)  # the freshness bound
    with pytest.raises(AuthenticationError):
        client(api, token).collections()
    assert record.key_hash != token and token not in str(repo.list_api_keys())


def test_find_verify_represent_through_the_client(api, keys, people, lfw_image):
    acme = client(api, keys["a_query"])
    matches = acme.find(people, lfw_image("Abel_Pacheco", 3), k=2)
    assert matches[0].external_id == "abel" and matches[0].accepted
    assert len(matches) == 2 and not matches[1].accepted
    point = matches.operating_point  # which decision was applied, in every answer
    assert point.target_fpir == 0.01 and point.gallery_identities == 2
    assert matches[0].threshold == point.threshold and point.source
    strict = acme.find(people, lfw_image("Abel_Pacheco", 3), k=1, fpir=0.001)
    assert strict.operating_point.target_fpir == 0.001
    assert strict.operating_point.threshold < point.threshold
    fixed = acme.find(people, lfw_image("Abel_Pacheco", 3), k=1, threshold=0.5)
    assert fixed.operating_point.threshold == 0.5 and fixed.operating_point.target_fpir is None
    pil = Image.open(lfw_image("Adam_Sandler", 3))
    assert acme.find(people, pil, k=1)[0].external_id == "adam"

    same = acme.verify(lfw_image("Abel_Pacheco", 3), lfw_image("Abel_Pacheco", 1))
    other = acme.verify(lfw_image("Abel_Pacheco", 3), lfw_image("Adam_Sandler", 1))
    assert same.verified and not other.verified and same.distance < other.distance
    vs_identity = acme.verify(lfw_image("Adam_Sandler", 3), collection=people, identity="adam")
    assert vs_identity.verified and vs_identity.identity == "adam"
    assert not acme.verify(
        lfw_image("Abel_Pacheco", 3), collection=people, identity="adam"
    ).verified

    faces = acme.represent(lfw_image("Abel_Pacheco", 1))
    assert faces[0].embedding is not None and faces[0].embedding.shape == (128,)
    assert abs(float(np.linalg.norm(faces[0].embedding)) - 1) < 1e-3
    with pytest.raises(NoFaceError):
        acme.represent(np.zeros((64, 64, 3), dtype=np.uint8))
    with pytest.raises(LimitExceededError):
        acme.find(people, lfw_image("Abel_Pacheco", 3), k=1000)


def test_find_reports_server_timing(api, keys, people, lfw_image):
    _, http = api
    jpeg = base64.b64encode(lfw_image("Abel_Pacheco", 3).read_bytes()).decode()
    r = http.post(
        f"/v1/collections/{people}/find",
        json={"image": jpeg, "k": 1},
        headers={"X-API-Key": keys["a_query"]},
    )
    assert r.status_code == 200 and r.json()["matches"][0]["external_id"] == "abel"
    timing = r.headers["server-timing"]
    parts = ("decode", "queue", "model", "point", "index", "owners", "app")
    for part in (f"{name};dur=" for name in parts):
        assert part in timing


def test_find_with_an_embedding_probe(api, keys, people, lfw_image):
    """The probe of callers that embed at the edge: JSON, no model runs on the server."""
    acme = client(api, keys["a_query"])
    vector = acme.represent(lfw_image("Abel_Pacheco", 3), collection=people)[0].embedding
    by_image = acme.find(people, lfw_image("Abel_Pacheco", 3), k=2)
    by_vector = acme.find(people, embedding=vector, k=2)
    assert [m.external_id for m in by_vector] == [m.external_id for m in by_image]
    assert by_vector[0].similarity == pytest.approx(by_image[0].similarity, abs=1e-4)
    assert by_vector.operating_point == by_image.operating_point
    assert acme.find(people, embedding=list(vector * 3), k=1)[0].external_id == "abel"
    _, http = api
    r = http.post(
        f"/v1/collections/{people}/find",
        json={"embedding": vector.tolist(), "k": 1},
        headers={"X-API-Key": keys["a_query"]},
    )
    timing = r.headers["server-timing"]
    assert "index;dur=" in timing and "owners;dur=" in timing and "model;dur=" not in timing
    with pytest.raises(ModelMismatchError):
        acme.find(people, embedding=vector[:64])
    with pytest.raises(InvalidParameterError):
        acme.find(people, embedding=[0.0] * 128)
    for body in (
        json.dumps({"embedding": [float("nan")] * 128}),  # Python's json writes NaN
        json.dumps({"embedding": vector.tolist(), "image": base64.b64encode(b"x").decode()}),
        json.dumps({"k": 1}),
        json.dumps({"embedding": []}),
    ):
        r = http.post(
            f"/v1/collections/{people}/find",
            content=body,
            headers={"X-API-Key": keys["a_query"], "Content-Type": "application/json"},
        )
        assert r.status_code == 422, (body[:40], r.text)
    with pytest.raises(ValueError, match="an image or an embedding"):
        acme.find(people)


def test_collections_identities_paging_update_delete(api, keys, people, lfw_image):
    acme = client(api, keys["a_admin"])
    coll = acme.collection(people)
    assert (coll.identities, coll.faces, coll.dim) == (2, 4, 128)
    page = acme.identities(people, offset=1, limit=1)
    assert page.total == 2 and [i.external_id for i in page.items] == ["adam"]
    assert acme.identity(people, "abel").faces == 2
    updated = acme.update_identity(people, "adam", metadata={"team": "blue"})
    assert updated.metadata == {"team": "blue"} and updated.name == "Adam"
    again = acme.enroll(people, "abel", [lfw_image("Abel_Pacheco", 1)])
    assert again.duplicates == 1 and again.face_ids == []

    acme.create_collection("temp")
    acme.enroll("temp", "x", [lfw_image("Abdullah_Gul", 1)])
    acme.enroll("temp", "y", [lfw_image("Abdullah_Gul", 2)])
    assert acme.delete_identity("temp", "x") == 1
    matches = acme.find("temp", lfw_image("Abdullah_Gul", 1), k=5)
    assert [m.external_id for m in matches] == ["y"]
    with pytest.raises(UnknownIdentityError):
        acme.identity("temp", "x")
    job = acme.reindex("temp").wait(timeout=30)
    assert job.status == "succeeded" and job.counts["faces"] == 1
    assert acme.job(job.id).status == "succeeded"
    assert acme.delete_collection("temp") == 1
    with pytest.raises(UnknownCollectionError):
        acme.collection("temp")


def test_a_tenant_sees_nothing_of_another(api, keys, people, lfw_image):
    beta = client(api, keys["b_all"])
    assert beta.collections().total == 0
    probe = lfw_image("Abel_Pacheco", 3)
    for call in (
        lambda: beta.collection(people),
        lambda: beta.find(people, probe),
        lambda: beta.identities(people),
        lambda: beta.delete_identity(people, "abel"),
        lambda: beta.enroll(people, "intruder", [probe]),
        lambda: beta.verify(probe, collection=people, identity="abel"),
    ):
        with pytest.raises(UnknownCollectionError):
            call()
    acme_job = client(api, keys["a_admin"]).reindex(people)
    with pytest.raises(Exception) as caught:
        beta.job(acme_job.id)
    assert getattr(caught.value, "http_status", None) == 404
    assert beta.create_collection(people).tenant == "beta"  # same name, other tenant
    assert client(api, keys["a_query"]).identity(people, "abel").faces == 2


def test_enroll_jobs_need_server_paths(api, keys, people, lfw_image, tmp_path):
    acme = client(api, keys["a_admin"])
    root = tmp_path / "photos"
    for person in ("Abel_Pacheco", "Adam_Sandler"):
        (root / person).mkdir(parents=True)
        (root / person / "3.jpg").symlink_to(lfw_image(person, 3))
    with pytest.raises(PermissionDeniedError) as denied:
        acme.enroll_job(people, str(root))
    assert denied.value.code == "server_paths_disabled"
    settings = api[0].state.runtime.settings
    settings.api.allow_server_paths = True
    try:
        with pytest.raises(PermissionDeniedError) as no_roots:
            acme.enroll_job(people, str(root))
        assert no_roots.value.code == "server_paths_disabled"
        settings.api.server_path_roots = [str(tmp_path / "{tenant}"), str(tmp_path)]
        job = acme.enroll_job("staff", str(root), batch_size=1).wait(progress=True, timeout=60)
        # Outside every root: refused alike whether the folder exists or not.
        for outside in ("/etc", "/no/such/folder", f"{root}/../../.."):
            with pytest.raises(PermissionDeniedError) as refused:
                acme.enroll_job(people, outside)
            assert refused.value.code == "path_not_permitted", outside
        settings.api.server_path_roots = [str(tmp_path / "{tenant}")]  # acme's own tree only
        with pytest.raises(PermissionDeniedError):
            acme.enroll_job(people, str(root))
        (tmp_path / "acme" / "Abel_Pacheco").mkdir(parents=True)
        (tmp_path / "acme" / "Abel_Pacheco" / "3.jpg").symlink_to(lfw_image("Abel_Pacheco", 3))
        mine = acme.enroll_job(people, "Abel_Pacheco/..", batch_size=1).wait(timeout=60)
        assert mine.status == "succeeded"
        with pytest.raises(ValidationError):
            acme.enroll_job(people, "")
    finally:
        settings.api.allow_server_paths = False
        settings.api.server_path_roots = []
    assert job.status == "succeeded" and job.counts["faces_added"] == 2
    # Newest first, and only the jobs: their batch parts are not listed.
    assert [j.id for j in acme.jobs() if j.kind == job.kind] == [mine.id, job.id]


def test_client_retries_503_then_raises_typed(api):
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if len(calls) < 3:
            return httpx.Response(503, json={"error": {"code": "unavailable", "message": "x"}})
        return httpx.Response(
            404, json={"error": {"code": "unknown_collection", "message": "gone"}}
        )

    c = FaceIDClient("http://x", transport=httpx.MockTransport(handler), backoff=0.001)
    with pytest.raises(UnknownCollectionError, match="gone"):
        c.collection("c")
    assert len(calls) == 3


def test_health_ready_metrics(api, people):
    _, http = api
    assert http.get("/healthz").json()["status"] == "ok"
    ready = http.get("/readyz").json()
    assert ready["status"] == "ok" and ready["checks"]["database"] == "ok"
    # No key is needed for these: they name no collection and count no tenant's faces.
    assert set(ready["checks"]["indexes"]) == {"loaded"}
    text = http.get("/metrics").text
    assert 'route="/v1/collections/{collection}/find"' in text
    assert "faceid_faces_enrolled_total" in text and 'faceid_index_size{collection_id="*"}' in text
    assert not re.search(r'faceid_index_size\{collection_id="\d+"\}', text)


def test_bodies_over_the_limit_get_413(api, keys, people):
    _, http = api
    headers = {"X-API-Key": keys["a_query"], "content-type": "application/json"}
    big = b"x" * (5 * 1024 * 1024)
    r = http.post(f"/v1/collections/{people}/find", content=big, headers=headers)
    assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"
    chunks = (b"y" * 65536 for _ in range(80))  # no Content-Length: counted while read
    r = http.post(f"/v1/collections/{people}/find", content=chunks, headers=headers)
    assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"


def test_ids_that_urls_would_rewrite_are_refused_and_never_delete_a_collection(
    api, keys, lfw_image
):
    from identity_service.client.calls import seg
    from identity_service.errors import InvalidIdentifierError

    acme = client(api, keys["a_admin"])
    acme.create_collection("dots")
    acme.enroll("dots", "keep", [lfw_image("Abdullah_Gul", 1)])
    for bad in ("..", ".", "a/b", "tab\there", "x" * 201):
        with pytest.raises(InvalidIdentifierError) as err:
            acme.enroll("dots", bad, [lfw_image("Abdullah_Gul", 2)])
        assert err.value.code == "invalid_id"
    # The client never sends a '.' or '..' segment, so no id can address the collection.
    assert (seg(".."), seg("."), seg("a/b")) == ("%2E%2E", "%2E", "a%2Fb")
    with pytest.raises(UnknownIdentityError):
        acme.delete_identity("dots", "..")
    assert acme.collection("dots").faces == 1 and acme.identity("dots", "keep").faces == 1
    # Ids with other punctuation still work end to end.
    odd = "emp 42 ?#%.."
    acme.enroll("dots", odd, [lfw_image("Abdullah_Gul", 3)])
    assert acme.identity("dots", odd).faces == 1 and acme.delete_identity("dots", odd) == 1
    assert acme.delete_collection("dots") == 1


def test_metadata_that_cannot_be_read_back_is_refused_before_it_is_stored(api, keys, people):
    _, http = api
    auth = {"Authorization": f"Bearer {keys['a_admin']}"}
    url = f"/v1/collections/{people}/identities/abel"
    before = http.get(url, headers=auth).json()
    # A lone surrogate: valid JSON escape, but no UTF-8 text can hold it.
    body = b'{"metadata": {"x": "\\udfff"}}'
    response = http.patch(url, content=body, headers={**auth, "Content-Type": "application/json"})
    assert response.status_code == 422 and response.json()["error"]["code"] == "invalid_metadata"
    after = http.get(url, headers=auth)
    assert after.status_code == 200 and after.json()["metadata"] == before["metadata"]
    assert http.get(f"/v1/collections/{people}/identities", headers=auth).status_code == 200


def test_deeply_nested_bodies_wrapped_base64_and_head_healthz(api, keys, people, lfw_image):
    _, http = api
    auth = {"Authorization": f"Bearer {keys['a_admin']}", "Content-Type": "application/json"}
    deep = b"[" * 100_000 + b"]" * 100_000
    for path in (f"/v1/collections/{people}/find", f"/v1/collections/{people}/enroll"):
        response = http.post(path, content=deep, headers=auth)
        assert 400 <= response.status_code < 500, (path, response.status_code, response.text)
        assert "error" in response.json()
    # base64 wrapped at 76 columns, as the base64 command writes it
    wrapped = base64.encodebytes(lfw_image("Abel_Pacheco", 3).read_bytes()).decode()
    assert "\n" in wrapped
    url = f"/v1/collections/{people}/find"
    found = http.post(url, json={"image": wrapped, "k": 1}, headers=auth)
    plain = http.post(url, json={"image": "".join(wrapped.split()), "k": 1}, headers=auth)
    assert found.status_code == 200 and found.json()["matches"] == plain.json()["matches"]
    head = http.head("/healthz")
    assert head.status_code == 200


def test_an_idempotency_key_returns_the_first_job(api, keys, people, lfw_image, tmp_path):
    acme = client(api, keys["a_admin"])
    root = tmp_path / "photos" / "Adam_Sandler"
    root.mkdir(parents=True)
    (root / "3.jpg").symlink_to(lfw_image("Adam_Sandler", 3))
    settings = api[0].state.runtime.settings
    settings.api.allow_server_paths = True
    settings.api.server_path_roots = [str(tmp_path)]
    try:
        first = acme.enroll_job(people, str(root.parent), idempotency_key="upload-7")
        again = acme.enroll_job(people, str(root.parent), idempotency_key="upload-7")
        other = acme.enroll_job(people, str(root.parent), idempotency_key="upload-8")
    finally:
        settings.api.allow_server_paths = False
        settings.api.server_path_roots = []
    assert again.id == first.id and other.id != first.id
    from identity_service.jobs.api import idempotent_job_id

    # A key names a job within its tenant only.
    assert idempotent_job_id("acme", "upload-7") == first.id
    assert idempotent_job_id("beta", "upload-7") != first.id


def test_client_waits_retry_after_spread_so_shed_clients_do_not_return_together():
    c = FaceIDClient("http://x", transport=httpx.MockTransport(lambda r: httpx.Response(503)))
    shed = httpx.Response(503, headers={"Retry-After": "2"})
    delays = [c._retry_delay(0, shed) for _ in range(200)]
    assert all(2.0 <= d <= 3.0 for d in delays)
    assert max(delays) - min(delays) > 0.5  # spread, not one instant
    assert c._retry_delay(c.retries, shed) is None
