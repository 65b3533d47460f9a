"""A node keeps the API keys it looked up while the key table is unchanged: a warm node asks the
database nothing to authenticate, and a key created or revoked anywhere is in force on it within
the freshness bound (FACEID_INDEX_POLL_INTERVAL), as a deletion is."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event

from identity_service.api import create_app
from identity_service.api.auth import create_api_key, hash_key
from identity_service.api.key_cache import KeyCache
from identity_service.config import ApiSettings, IndexSettings, Settings
from identity_service.store import ApiKeyRecord

BOUND = 0.3


def settle() -> None:
    time.sleep(BOUND * 1.2)


@pytest.fixture
def api(tmp_path):
    settings = Settings(
        data_dir=tmp_path,
        workers=1,
        api=ApiSettings(auth=True, preload=False),
        index=IndexSettings(poll_interval=BOUND),
    )
    app = create_app(settings)
    with TestClient(app) as http:
        yield app.state.runtime.service, http


def test_a_warm_node_looks_no_key_up_and_follows_new_and_revoked_keys(api):
    service, http = api
    token, record = create_api_key(service.repo, "acme", ["query"])
    other = "fid_" + "x" * 43  # a key nobody has created yet
    settle()

    def status(key: str) -> int:
        return http.get("/v1/collections", headers={"X-API-Key": key}).status_code

    assert (status(token), status(other)) == (200, 401)
    lookups: list[str] = []

    def count(conn, cursor, statement, *args) -> None:
        if statement.lstrip().startswith("SELECT") and "api_keys.key_hash = " in statement:
            lookups.append(statement)

    event.listen(service.engine, "before_cursor_execute", count)
    try:
        assert [status(token) for _ in range(5)] + [status(other)] == [200] * 5 + [401]
        assert lookups == []  # known and unknown keys alike, from memory
        # what another node (or `faceid keys`) writes is in force here within the bound
        service.repo.add_api_key(hash_key(other), tenant="acme", scopes=["query"])
        service.repo.revoke_api_key(record.id)
        settle()
        assert (status(token), status(other)) == (401, 200)
        assert len(lookups) == 2  # looked up once each after the table moved
    finally:
        event.remove(service.engine, "before_cursor_execute", count)


def _record(n: int) -> ApiKeyRecord:
    return ApiKeyRecord(n, f"h{n}", "acme", ["query"], None, datetime.now(UTC))


def test_a_lookup_that_raced_a_change_is_not_kept():
    version = [(1, 0)]
    cache = KeyCache(10.0, lambda: version[0])
    cache.refresh()
    known, _, generation = cache.get("h1")
    assert not known
    version[0] = (1, 1)  # revoked while the lookup read the table
    cache.refresh()
    record = _record(1)
    cache.put("h1", record, generation)  # what the lookup read may predate the revocation
    assert cache.get("h1")[0] is False
    cache.put("h1", record, cache.get("h1")[2])
    assert cache.get("h1")[:2] == (True, record)


def test_an_unreadable_version_forgets_every_key_and_keeps_none():
    state: dict[str, object] = {"version": (1, 0)}

    def version() -> tuple[int, int]:
        if isinstance(state["version"], Exception):
            raise state["version"]
        return state["version"]  # type: ignore[return-value]

    cache = KeyCache(10.0, version)
    cache.put("h1", _record(1), cache.get("h1")[2])
    assert cache.get("h1")[0] is False  # no version read yet: nothing kept
    cache.refresh()
    cache.put("h1", _record(1), cache.get("h1")[2])
    assert cache.get("h1")[0] is True
    state["version"] = ConnectionError("database down")
    cache.refresh()
    assert cache.get("h1")[0] is False
    cache.put("h1", _record(1), cache.get("h1")[2])
    assert cache.get("h1")[0] is False  # asks the database (which answers 503) until it is back
