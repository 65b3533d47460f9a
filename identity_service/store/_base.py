"""Transaction plumbing shared by the repository's parts."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, Table, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from ..errors import UnknownCollectionError, UnknownIdentityError
from .db import WRITE_OPTION
from .models import Collection, Identity, IndexLog


class StoreBase:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._dialect = engine.dialect.name
        if self._dialect not in ("sqlite", "postgresql"):
            raise ValueError(f"unsupported database {self._dialect!r}: use SQLite or Postgres")

    @property
    def engine(self) -> Engine:
        return self._engine

    @contextmanager
    def _tx(self, write: bool = False, snapshot: bool = False) -> Iterator[Session]:
        """One transaction, committed on success.

        ``write`` takes SQLite's write lock at BEGIN. ``snapshot`` makes every statement see
        the same snapshot on Postgres (SQLite transactions always do).
        """
        options: dict[str, Any] = {}
        if write:
            options[WRITE_OPTION] = True
        if snapshot and self._dialect == "postgresql":
            options["isolation_level"] = "REPEATABLE READ"
        with Session(self._engine, expire_on_commit=False) as session, session.begin():
            session.connection(execution_options=options)
            yield session

    def _insert(self, table: Table) -> postgresql.Insert | sqlite.Insert:
        """An INSERT that supports ``on_conflict_do_nothing`` on this dialect."""
        if self._dialect == "postgresql":
            return postgresql.insert(table)
        return sqlite.insert(table)

    @staticmethod
    def _max_seq(s: Session, collection_id: int) -> int:
        value = s.scalar(
            select(func.max(IndexLog.seq)).where(IndexLog.collection_id == collection_id)
        )
        return int(value or 0)

    @staticmethod
    def _log_change(s: Session, collection_ids: list[int], op: str, ref: int = 0) -> None:
        """Log a change query nodes cache (``config``: a collection's settings, name or
        calibrations; ``identity``: identity ``ref``'s name, metadata or tombstone). The caller
        holds the collection lock, so the row becomes visible in seq order like a face's."""
        if collection_ids:
            s.execute(
                IndexLog.__table__.insert(),
                [{"collection_id": c, "face_id": int(ref), "op": op} for c in collection_ids],
            )

    @staticmethod
    def _collection(s: Session, collection_id: int, lock: bool = False) -> Collection:
        stmt = select(Collection).where(Collection.id == collection_id)
        if lock:
            # NO KEY UPDATE: serialises log writers without blocking FK checks of inserts.
            stmt = stmt.with_for_update(key_share=True)
        row = s.scalar(stmt)
        if row is None:
            raise UnknownCollectionError(
                f"unknown collection id {collection_id}", collection_id=collection_id
            )
        return row

    @staticmethod
    def _identity(s: Session, collection_id: int, external_id: str, lock: bool = False) -> Identity:
        stmt = select(Identity).where(
            Identity.collection_id == collection_id,
            Identity.external_id == external_id,
            Identity.deleted.is_(False),
        )
        if lock:
            stmt = stmt.with_for_update()
        row = s.scalar(stmt)
        if row is None:
            raise UnknownIdentityError(
                f"unknown identity {external_id!r} in collection {collection_id}",
                external_id=external_id,
                collection_id=collection_id,
            )
        return row
