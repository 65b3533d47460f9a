"""The bad-input corpus (tests/api_corpus.py) against the app in-process: every case gets its
documented status and error code with the documented error body, no answer is a 5xx, nothing
changes, and every operation of the app's live OpenAPI document has cases."""

from __future__ import annotations

import api_corpus
import pytest
from api_corpus import Bad, check, corpus, operations, tally, uncovered
from fastapi.testclient import TestClient

from identity_service.api import create_app
from identity_service.api.auth import create_api_key
from identity_service.config import Settings


@pytest.fixture(scope="module")
def cases(lfw_image) -> list[Bad]:
    return corpus(lfw_image("Abel_Pacheco", 3))


@pytest.fixture(scope="module")
def corpus_keys(api, keys) -> dict[str, str]:
    """Keys of tenant acme: admin, query only, enroll only, and a revoked admin key."""
    repo = api[0].state.runtime.service.repo
    revoked, record = create_api_key(repo, "acme", ["admin"])
    repo.revoke_api_key(record.id)
    return {
        "admin": keys["a_admin"],
        "query": keys["a_query"],
        "enroll": create_api_key(repo, "acme", ["enroll"])[0],
        "revoked": revoked,
    }


def _state(http: TestClient, key: str, collection: str) -> tuple:
    auth = {"X-API-Key": key}
    colls = http.get("/v1/collections", headers=auth).json()
    idents = http.get(f"/v1/collections/{collection}/identities", headers=auth).json()
    return (
        sorted((c["name"], c["model"], c["threshold"]) for c in colls["items"]),
        sorted((i["external_id"], i["name"], str(i["metadata"])) for i in idents["items"]),
        http.get(f"/v1/collections/{collection}", headers=auth).json()["faces"],
    )


def test_every_bad_input_gets_its_documented_error_and_no_5xx(
    api, people, corpus_keys, cases, capsys
):
    app, _ = api
    # An unexpected exception must come back as the 500 it would be, named by its case.
    http = TestClient(app, raise_server_exceptions=False)
    before = _state(http, corpus_keys["admin"], people)
    problems: list[str] = []
    server_errors = 0
    for bad in cases:
        response = bad.send(http, people, corpus_keys)
        server_errors += response.status_code >= 500
        problems += check(bad, response)
    n_cases, n_routes = tally(cases, app.openapi())
    with capsys.disabled():
        print(
            f"\nbad inputs tried: {n_cases} over {n_routes} routes, 5xx seen: {server_errors}",
            end=" ",
        )
    assert not problems, f"{len(problems)} of {n_cases} cases:\n" + "\n".join(problems)
    assert server_errors == 0
    assert _state(http, corpus_keys["admin"], people) == before, "a bad input changed state"
    assert http.get("/healthz").status_code == 200


def test_every_operation_has_bad_input_cases(api, cases):
    doc = api[0].openapi()  # the live document of the app, not the exported file
    missing = uncovered(doc, cases)
    assert not missing, "operations without bad-input cases in tests/api_corpus.py:\n" + "\n".join(
        f"{op}: {why}" for op, why in missing.items()
    )
    # A case names an operation of the document, or a probe declared as outside it.
    strays = sorted({c.route for c in cases} - operations(doc) - api_corpus.OFF_SCHEMA)
    assert not strays, f"cases naming no operation (a typo, or add to OFF_SCHEMA): {strays}"
    assert set(api_corpus.SCOPES) == operations(doc) - api_corpus.NO_INPUT
    names = [c.label() for c in cases]
    assert len(names) == len(set(names)), "two cases of one route share a name"


def test_a_new_route_without_cases_fails_the_coverage_check(cases, tmp_path):
    app = create_app(Settings(data_dir=tmp_path, workers=1))

    def new_thing() -> dict[str, str]:
        return {}

    app.add_api_route("/v1/new-thing", new_thing, methods=["POST"])
    assert uncovered(app.openapi(), cases) == {"POST /v1/new-thing": "no case"}
    probe_only = [*cases, Bad("probe", 200, "", route="POST /v1/new-thing")]
    assert uncovered(app.openapi(), probe_only) == {
        "POST /v1/new-thing": "no case that expects an error"
    }


def test_refused_metadata_and_names_leave_an_identity_readable(api, people, corpus_keys):
    """Metadata nested a few hundred levels parsed and stored, but no answer could serialise
    it again; a lone surrogate in a name failed in the database. Both are refused first."""
    _, http = api
    auth = {"X-API-Key": corpus_keys["admin"], "content-type": "application/json"}
    url = f"/v1/collections/{people}/identities/abel"
    before = http.get(url, headers=auth).json()
    deep = '{"metadata": ' + '{"a":' * 300 + "1" + "}" * 300 + "}"
    for body, code in [
        (deep, "invalid_metadata"),
        ('{"name": "\\udfff"}', "validation_error"),
        ('{"metadata": {"x": "\\udfff"}}', "invalid_metadata"),
    ]:
        response = http.patch(url, content=body.encode(), headers=auth)
        assert (response.status_code, response.json()["error"]["code"]) == (422, code), body[:40]
    after = http.get(url, headers=auth)
    assert after.status_code == 200 and after.json() == before
    listed = http.get(f"/v1/collections/{people}/identities", headers=auth)
    assert listed.status_code == 200
