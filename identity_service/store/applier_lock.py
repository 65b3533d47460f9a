"""One writer at a time per shared index: the lock a process holds while it applies a
collection's ``index_log`` to a vector store that every node shares (Milvus).

On Postgres it is a session advisory lock on a connection of its own, so it is released when
the holder unlocks, or when its process dies (kill -9 closes the connection). On SQLite, whose
database is one file on one machine, it is an ``flock`` on a file beside the database, which
the kernel releases the same way. Inside one process a thread lock comes first, so threads
queue on it instead of polling the database.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from sqlalchemy import text
from sqlalchemy.engine import Engine

_thread_locks: dict[str, threading.Lock] = {}
_guard = threading.Lock()
_RETRY_S = 0.02


def _key64(key: str) -> int:
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big", signed=True)


class ApplierLock:
    """``with lock.hold(timeout) as held:`` — ``held`` is False when ``timeout`` seconds
    passed before the lock was free (0: try once)."""

    def __init__(self, engine: Engine, key: str) -> None:
        self._engine = engine
        self.key = key
        with _guard:
            self._local = _thread_locks.setdefault(f"{engine.url}|{key}", threading.Lock())

    @contextlib.contextmanager
    def hold(self, timeout: float) -> Iterator[bool]:
        deadline = time.monotonic() + max(0.0, timeout)
        if timeout > 0:
            acquired = self._local.acquire(timeout=timeout)
        else:
            acquired = self._local.acquire(blocking=False)
        if not acquired:
            yield False
            return
        try:
            with self._across_processes(deadline) as held:
                yield held
        finally:
            self._local.release()

    @contextlib.contextmanager
    def _across_processes(self, deadline: float) -> Iterator[bool]:
        if self._engine.dialect.name == "postgresql":
            with self._advisory(deadline) as held:
                yield held
        elif self._engine.dialect.name == "sqlite":
            with self._flock(deadline) as held:
                yield held
        else:  # another database: one process only
            yield True

    @contextlib.contextmanager
    def _advisory(self, deadline: float) -> Iterator[bool]:
        key = _key64(self.key)
        conn = self._engine.connect()
        held = False
        try:
            while True:
                held = bool(
                    conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar()
                )
                conn.commit()
                if held or time.monotonic() >= deadline:
                    break
                time.sleep(_RETRY_S)
            yield held
        finally:
            try:
                if held:
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                    conn.commit()
            except Exception:
                conn.invalidate()  # the session, and with it the lock, is closed
            finally:
                conn.close()

    @contextlib.contextmanager
    def _flock(self, deadline: float) -> Iterator[bool]:
        database = self._engine.url.database
        if not database or database == ":memory:":
            yield True  # an in-memory database lives in this process only
            return
        digest = hashlib.sha256(self.key.encode()).hexdigest()[:16]
        path = Path(database).with_name(f".{Path(database).name}.applier-{digest}.lock")
        handle: IO[Any] = open(path, "a+")  # noqa: SIM115 (held across the yield)
        held = False
        try:
            while True:
                try:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                    held = True
                except BlockingIOError:
                    held = False
                if held or time.monotonic() >= deadline:
                    break
                time.sleep(_RETRY_S)
            yield held
        finally:
            if held:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
            handle.close()


def applier_lock(engine: Engine, key: str) -> ApplierLock:
    return ApplierLock(engine, key)


__all__ = ["ApplierLock", "applier_lock"]
