"""Migrations, schema checks and engine setup on SQLite."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from identity_service.errors import SchemaOutdatedError
from identity_service.store import (
    check_schema,
    current_revision,
    downgrade,
    head_revision,
    make_engine,
    upgrade,
)
from identity_service.store.models import Base

TABLES = {
    "alembic_version",
    "api_keys",
    "calibrations",
    "collections",
    "faces",
    "identities",
    "index_log",
    "jobs",
    "open_set_calibrations",
}


def _url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'nested' / 'dir' / 'faceid.sqlite3'}"


def test_upgrade_creates_schema_matching_models_and_downgrade_drops_it(tmp_path: Path) -> None:
    url = _url(tmp_path)
    assert current_revision(url) is None
    upgrade(url)
    assert current_revision(url) == head_revision()

    engine = make_engine(url)
    try:
        assert set(inspect(engine).get_table_names()) == TABLES
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert diff == [], f"models and migrations disagree: {diff}"
        check_schema(engine)
    finally:
        engine.dispose()

    downgrade(url, "base")
    assert current_revision(url) is None
    engine = make_engine(url)
    try:
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    finally:
        engine.dispose()
    upgrade(url)  # and back up again
    assert current_revision(url) == head_revision()


def test_check_schema_on_empty_database(tmp_path: Path) -> None:
    engine = make_engine(_url(tmp_path))
    try:
        with pytest.raises(SchemaOutdatedError) as err:
            check_schema(engine)
    finally:
        engine.dispose()
    assert "faceid db upgrade" in err.value.message
    assert head_revision() in err.value.message
    assert err.value.code == "schema_outdated"


def test_check_schema_on_unknown_revision(tmp_path: Path) -> None:
    url = _url(tmp_path)
    upgrade(url)
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = 'ffff'"))
        with pytest.raises(SchemaOutdatedError, match="ffff"):
            check_schema(engine)
    finally:
        engine.dispose()


def test_sqlite_engine_pragmas(tmp_path: Path) -> None:
    engine = make_engine(_url(tmp_path))
    try:
        assert (tmp_path / "nested" / "dir").is_dir()
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 1000
    finally:
        engine.dispose()
