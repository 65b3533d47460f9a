"""The vector stores a gallery can live in, as fixtures (a pytest plugin: tests/conftest.py).

``vector_store`` is parametrised over ``faiss`` (in-process) and ``milvus`` (a real milvus-lite
gRPC server this session starts on a free port in a temporary folder); a test or fixture that
takes it runs once per store and puts it in ``IndexSettings(vector_store=...)``. Each module
gets its own Milvus collection prefix, so modules never see each other's collections. A
Milvus server that cannot start fails the tests that need it; it never skips them.
FACEID_TEST_MILVUS_URL=http://host:19530 runs the same tests against a Milvus of your own
(standalone or a cluster) instead of starting milvus-lite.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

INSTALL = (
    ".venv/bin/pip install -e '.[milvus]' (pymilvus and milvus-lite; scripts/test.sh installs "
    "them), then check that `milvus-lite server --host 127.0.0.1 --port 19530 --data-dir /tmp/m` "
    "starts"
)
STORES = ("faiss", "milvus")


@dataclass
class MilvusServer:
    """A milvus-lite gRPC server this test session started."""

    host: str
    port: int
    data_dir: Path | None
    process: subprocess.Popen[bytes] | None
    log: Path | None

    def url(self, prefix: str, **options: object) -> str:
        query = "&".join([f"prefix={prefix}", *(f"{k}={v}" for k, v in options.items())])
        return f"milvus://{self.host}:{self.port}?{query}"

    def client(self) -> Any:  # a pymilvus MilvusClient (pymilvus is optional)
        from pymilvus import MilvusClient

        return MilvusClient(uri=f"http://{self.host}:{self.port}", timeout=10)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _command(port: int, data_dir: Path) -> list[str]:
    script = Path(sys.executable).with_name("milvus-lite")
    exe = [str(script)] if script.exists() else [sys.executable, "-m", "milvus_lite"]
    return [*exe, "server", "--host", "127.0.0.1", "--port", str(port), "--data-dir", str(data_dir)]


def _wait_until_it_answers(server: MilvusServer, deadline_s: float) -> str | None:
    """None once the server answers a call, else why not."""
    try:
        import pymilvus  # noqa: F401
    except ImportError:
        return "pymilvus is not installed"
    deadline = time.monotonic() + deadline_s
    problem = "it never answered"
    while time.monotonic() < deadline:
        if server.process is not None and server.process.poll() is not None:
            return f"it exited with {server.process.returncode}"
        try:
            server.client().get_server_version()
            return None
        except Exception as exc:  # not listening yet
            problem = str(exc)
            time.sleep(0.2)
    return problem


@pytest.fixture(scope="session")
def milvus_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MilvusServer]:
    if own := os.environ.get("FACEID_TEST_MILVUS_URL"):
        parts = urlsplit(own)
        server = MilvusServer(parts.hostname or "127.0.0.1", parts.port or 19530, None, None, None)
        if (problem := _wait_until_it_answers(server, 10)) is not None:
            pytest.fail(f"FACEID_TEST_MILVUS_URL={own} does not answer: {problem}", pytrace=False)
        yield server
        return
    folder = tmp_path_factory.mktemp("milvus")
    port = _free_port()
    log = folder / "server.log"
    command = _command(port, folder / "data")
    try:
        process = subprocess.Popen(command, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    except OSError as exc:
        pytest.fail(f"milvus-lite could not start ({exc}): {INSTALL}", pytrace=False)
    server = MilvusServer("127.0.0.1", port, folder / "data", process, log)
    problem = _wait_until_it_answers(server, 60)
    if problem is not None:
        process.kill()
        process.wait(10)
        output = log.read_text(errors="replace")[-2000:]
        pytest.fail(
            f"milvus-lite server ({' '.join(command)}) did not start: {problem}\n{output}\n"
            f"Install and check it with: {INSTALL}",
            pytrace=False,
        )
    yield server
    process.terminate()
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)
    shutil.rmtree(folder / "data", ignore_errors=True)


def milvus_prefix(request: pytest.FixtureRequest) -> str:
    """A collection prefix of this module alone (Milvus' name rules)."""
    module = request.module.__name__.rsplit(".", 1)[-1].replace("test_", "")[:20]
    return f"t_{module}_{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module", params=STORES)
def vector_store(request: pytest.FixtureRequest) -> str:
    """``faiss``, or the URL of this session's Milvus server with a prefix of the module."""
    if request.param == "faiss":
        return "faiss"
    server: MilvusServer = request.getfixturevalue("milvus_server")
    return server.url(milvus_prefix(request))
