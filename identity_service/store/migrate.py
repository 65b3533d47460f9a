"""Schema migrations (Alembic, scripts in ``<repo>/migrations``) driven from code.

The Alembic configuration is built here rather than read from an ``alembic.ini``.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine
from sqlalchemy.engine import URL

from ..errors import SchemaOutdatedError
from .db import make_engine


def _migrations_dir() -> Path:
    import migrations  # the top-level package beside identity_service (installed with it)

    return Path(migrations.__file__).resolve().parent


MIGRATIONS_DIR = _migrations_dir()


def alembic_config(url: str | URL | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        # ConfigParser interpolation treats % specially (passwords may be percent-encoded).
        rendered = url.render_as_string(hide_password=False) if isinstance(url, URL) else url
        cfg.set_main_option("sqlalchemy.url", rendered.replace("%", "%%"))
    return cfg


def _run(url: str | URL, action: str, revision: str) -> None:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            cfg = alembic_config(url)
            cfg.attributes["connection"] = conn
            getattr(command, action)(cfg, revision)
            conn.commit()
    finally:
        engine.dispose()


def upgrade(url: str | URL, revision: str = "head") -> None:
    _run(url, "upgrade", revision)


def downgrade(url: str | URL, revision: str) -> None:
    """Downgrade to ``revision``; ``"base"`` drops every table."""
    _run(url, "downgrade", revision)


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:  # pragma: no cover - the migrations folder ships with revisions
        raise RuntimeError(f"no migrations found in {MIGRATIONS_DIR}")
    return head


def _current(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def current_revision(url: str | URL) -> str | None:
    """The revision the database is at; None for a database never migrated."""
    engine = make_engine(url)
    try:
        return _current(engine)
    finally:
        engine.dispose()


def check_schema(engine: Engine) -> None:
    """Raise :class:`SchemaOutdatedError` unless the database is at the code's head revision."""
    current = _current(engine)
    head = head_revision()
    if current == head:
        return
    known = {rev.revision for rev in ScriptDirectory.from_config(alembic_config()).walk_revisions()}
    if current is not None and current not in known:
        message = (
            f"database schema is at {current}, which this code does not know (code expects "
            f"{head}): the database was migrated by a newer faceid; upgrade faceid"
        )
    else:
        shown = current if current is not None else "<empty: never migrated>"
        message = f"database schema is at {shown}, code expects {head}: run `faceid db upgrade`"
    raise SchemaOutdatedError(message, current=current, expected=head)
