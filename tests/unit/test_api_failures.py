"""The API when something breaks behind it: a database or broker outage answers 503 with
Retry-After and a request id (one log line, no traceback), and an unexpected error answers a
500 JSON body without dropping the connection, so a client's next request on it still works."""

from __future__ import annotations

import logging
import socket
import threading
import time

import pytest
import sqlalchemy.exc
import uvicorn
from fastapi.testclient import TestClient

from identity_service.api import create_app
from identity_service.api.auth import create_api_key
from identity_service.config import ApiSettings, Settings


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("api"), workers=1, api=ApiSettings(auth=True)
    )
    app = create_app(settings)

    def boom() -> None:
        raise RuntimeError("a bug nobody handled")

    app.add_api_route("/boom", boom)  # a route that fails the way a bug would
    return app


def test_a_database_outage_answers_503_with_retry_after_and_one_log_line(app, caplog):
    with TestClient(app) as http:
        service = app.state.runtime.service
        key = create_api_key(service.repo, "acme", ["query", "enroll"])[0]
        auth = {"Authorization": f"Bearer {key}"}
        original = service.repo.list_collections

        def down(*args, **kwargs):
            raise sqlalchemy.exc.OperationalError("SELECT 1", {}, ConnectionRefusedError("down"))

        service.repo.list_collections = down
        try:
            with caplog.at_level(logging.WARNING, logger="identity_service.api"):
                response = http.get("/v1/collections", headers=auth)
        finally:
            service.repo.list_collections = original
        assert response.status_code == 503 and response.headers["Retry-After"] == "2"
        error = response.json()["error"]
        assert error["code"] == "unavailable"
        request_id = error["details"]["request_id"]
        assert response.headers["X-Request-Id"] == request_id
        lines = [r for r in caplog.records if request_id in r.getMessage()]
        assert len(lines) == 1 and lines[0].exc_info is None
        assert http.get("/v1/collections", headers=auth).status_code == 200  # back


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _exchange(sock: socket.socket, path: str) -> bytes:
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(
        next(
            line.split(b":")[1]
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length")
        )
    )
    while len(body) < length:
        body += sock.recv(65536)
    return head


def test_an_unexpected_error_answers_500_and_keeps_the_connection(app):
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        for _ in range(600):  # the lifespan starts the model workers too
            if server.started:
                break
            time.sleep(0.1)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            first = _exchange(sock, "/boom")
            assert first.startswith(b"HTTP/1.1 500") and b"x-request-id" in first.lower()
            second = _exchange(sock, "/healthz")  # the same connection
            assert second.startswith(b"HTTP/1.1 200"), second
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_a_server_started_without_its_database_stays_up_and_is_not_ready(tmp_path):
    settings = Settings(
        data_dir=tmp_path,
        workers=1,
        api=ApiSettings(auth=False),
        database_url="postgresql+psycopg2://faceid@127.0.0.1:1/nowhere",  # nothing listens
    )
    with TestClient(create_app(settings)) as http:  # the lifespan runs: it must not fail
        assert http.get("/healthz").status_code == 200
        ready = http.get("/readyz")
        assert ready.status_code == 503 and ready.json()["checks"]["database"].startswith("error")
        assert "127.0.0.1" not in ready.text  # no host in an answer that needs no key
        response = http.get("/v1/collections")
        assert response.status_code == 503 and response.headers["Retry-After"] == "2"
        assert response.json()["error"]["code"] == "unavailable"
