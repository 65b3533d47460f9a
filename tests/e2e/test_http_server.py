"""A real ``faceid serve`` process on the real Postgres, with a real Celery worker on Redis,
driven through FaceIDClient: keys, collections, enrollment (sync and as a job), find, verify,
represent, delete, tenant isolation, and the bad-input corpus; the server must live on."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis
from api_corpus import check, corpus

from identity_service.api.errors import AuthenticationError, PermissionDeniedError
from identity_service.client import FaceIDClient
from identity_service.errors import UnknownCollectionError, UnknownIdentityError
from identity_service.store import upgrade

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
REDIS_URL = os.environ.get("FACEID_TEST_E2E_REDIS_URL", "redis://127.0.0.1:6379/14")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    out = open(log, "wb")  # noqa: SIM115 - the process owns it
    cmd = [sys.executable, "-m", "identity_service", *args]
    return subprocess.Popen(
        cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
    )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


@dataclass
class Server:
    url: str
    env: dict[str, str]
    log: Path

    def key(self, tenant: str, scopes: str) -> str:
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "identity_service",
                "keys",
                "create",
                "--tenant",
                tenant,
                "--scopes",
                scopes,
                "--json",
            ],
            cwd=REPO,
            env=self.env,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        return json.loads(out.stdout)["token"]

    def client(self, key: str | None) -> FaceIDClient:
        return FaceIDClient(self.url, api_key=key, timeout=60)


@pytest.fixture
def server(postgres_url: str, tmp_path: Path) -> Iterator[Server]:
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).flushdb()
    except redis.exceptions.ConnectionError:
        pytest.fail(f"Redis at {REDIS_URL} is unreachable", pytrace=False)
    upgrade(postgres_url)
    port = _free_port()
    env = {
        **os.environ,
        "FACEID_DATABASE_URL": postgres_url,
        "FACEID_BROKER_URL": REDIS_URL,
        "FACEID_DATA_DIR": str(tmp_path / "data"),
        "FACEID_EMBEDDER": "dlib-resnet-v1",
        "FACEID_WORKERS": "1",
        "FACEID_API_ALLOW_SERVER_PATHS": "true",
        "FACEID_API_SERVER_PATH_ROOTS": json.dumps([str(tmp_path)]),
        "FACEID_API_MAX_BODY_BYTES": str(4 * 1024 * 1024),
    }
    env.pop("FACEID_API_AUTH", None)
    worker = _start(["worker", "--name", "e2e@%h"], env, tmp_path / "worker.log")
    proc = _start(
        ["serve", "--port", str(port), "--log-level", "warning"], env, tmp_path / "server.log"
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(f"{url}/readyz", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"server did not start:\n{(tmp_path / 'server.log').read_text()}")
            time.sleep(0.3)
        yield Server(url, env, tmp_path / "server.log")
    finally:
        _stop(proc)
        _stop(worker)


def _revoked_key(server: Server) -> str:
    """A key of tenant acme, revoked with ``faceid keys revoke``."""
    keys = [sys.executable, "-m", "identity_service", "keys"]
    made = subprocess.run(
        [*keys, "create", "--tenant", "acme", "--scopes", "admin", "--json"],
        cwd=REPO,
        env=server.env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    key = json.loads(made.stdout)
    subprocess.run(
        [*keys, "revoke", str(key["id"])],
        cwd=REPO,
        env=server.env,
        capture_output=True,
        check=True,
        timeout=60,
    )
    return key["token"]


def test_server_end_to_end(server: Server, lfw_image, tmp_path: Path):
    assert server.client(None).health()["status"] == "ok"
    with pytest.raises(AuthenticationError):
        server.client(None).collections()
    admin = server.client(server.key("acme", "admin"))
    query = server.client(server.key("acme", "query"))
    other = server.client(server.key("beta", "query,enroll"))

    admin.create_collection("staff")
    enrolled = admin.enroll(
        "staff",
        "abel",
        [lfw_image("Abel_Pacheco", 1), lfw_image("Abel_Pacheco", 2)],
        name="Abel",
        metadata={"team": "blue"},
    )
    assert len(enrolled.face_ids) == 2
    root = tmp_path / "photos"
    for person in ("Adam_Sandler", "Abdullah_Gul"):
        (root / person).mkdir(parents=True)
        for n in (1, 2):
            (root / person / f"{n}.jpg").symlink_to(lfw_image(person, n))
    job = admin.enroll_job("staff", str(root), batch_size=2).wait(timeout=120)
    assert job.status == "succeeded" and job.counts["faces_added"] == 4, job

    for person, ext in (("Abel_Pacheco", "abel"), ("Adam_Sandler", "Adam_Sandler")):
        matches = query.find("staff", lfw_image(person, 3), k=3)
        assert matches[0].external_id == ext and matches[0].accepted
    assert query.verify(lfw_image("Abel_Pacheco", 3), collection="staff", identity="abel").verified
    assert not query.verify(lfw_image("Abel_Pacheco", 3), lfw_image("Adam_Sandler", 3)).verified
    assert query.represent(lfw_image("Abdullah_Gul", 3))[0].embedding.shape == (128,)
    assert query.identities("staff").total == 3
    with pytest.raises(PermissionDeniedError):
        query.delete_identity("staff", "abel")

    # Tenant beta sees nothing of acme's.
    assert other.collections().total == 0
    for call in (
        lambda: other.find("staff", lfw_image("Abel_Pacheco", 3)),
        lambda: other.identity("staff", "abel"),
        lambda: other.delete_identity("staff", "abel"),
    ):
        with pytest.raises(UnknownCollectionError):
            call()

    assert admin.delete_identity("staff", "abel") == 2
    with pytest.raises(UnknownIdentityError):
        admin.identity("staff", "abel")
    after = query.find("staff", lfw_image("Abel_Pacheco", 3), k=5)
    assert "abel" not in [m.external_id for m in after]
    assert admin.reindex("staff").wait(timeout=60).counts["faces"] == 4

    # Bad inputs on every route: each its documented error and body, none a 5xx, nothing
    # changed, and the server still answers.
    keys = {
        "admin": server.key("acme", "admin"),
        "query": server.key("acme", "query"),
        "enroll": server.key("acme", "enroll"),
        "revoked": _revoked_key(server),
    }
    http = httpx.Client(base_url=server.url, timeout=60)
    problems = []
    cases = corpus(lfw_image("Abel_Pacheco", 3))
    for bad in cases:
        try:
            r = bad.send(http, "staff", keys)
        except httpx.TransportError as exc:
            problems.append(f"{bad.label()}: no answer ({exc!r})")
            continue
        problems += check(bad, r)
    big = http.post(
        "/v1/collections/staff/find",
        content=b"x" * (5 * 1024 * 1024),
        headers={"content-type": "application/json", "X-API-Key": keys["admin"]},
    )
    assert big.status_code == 413
    assert not problems, f"{len(problems)} of {len(cases)} cases:\n" + "\n".join(problems)
    assert query.identities("staff").total == 2 and query.collections().total == 1
    assert httpx.get(f"{server.url}/healthz").status_code == 200
    metrics = httpx.get(f"{server.url}/metrics").text
    assert "faceid_faces_enrolled_total 6.0" in metrics  # 2 synchronous + 4 by the job
    assert "Traceback" not in server.log.read_text()
