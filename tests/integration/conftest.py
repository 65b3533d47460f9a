"""Postgres fixtures: each test gets a freshly created database on the test server.

The server defaults to postgresql+psycopg2://postgres@127.0.0.1:5432/test (override with
FACEID_TEST_POSTGRES_URL). An unreachable server fails the tests; it never skips them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import OperationalError

DEFAULT_POSTGRES_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"
START_HINT = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"


@pytest.fixture(scope="session")
def postgres_server() -> URL:
    """The test server's URL, checked to answer."""
    url = make_url(os.environ.get("FACEID_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL))
    engine = create_engine(url, connect_args={"connect_timeout": 5})
    problem = None
    try:
        with engine.connect():
            pass
    except OperationalError as exc:
        problem = str(exc.orig).strip()
    finally:
        engine.dispose()
    if problem is not None:
        pytest.fail(
            f"Postgres at {url.render_as_string()} is unreachable: {problem}\n"
            f"Start it with: {START_HINT}\n"
            "or point FACEID_TEST_POSTGRES_URL at a server where the user may CREATE DATABASE.",
            pytrace=False,
        )
    return url


@pytest.fixture
def postgres_url(postgres_server: URL) -> Iterator[str]:
    """A new empty database for one test, dropped afterwards (even if a session lingers)."""
    name = f"faceid_test_{uuid.uuid4().hex[:16]}"
    admin = create_engine(postgres_server, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        yield postgres_server.set(database=name).render_as_string(hide_password=False)
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()
