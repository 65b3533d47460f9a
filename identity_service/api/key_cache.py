"""API keys a node has looked up, kept while the key table is unchanged.

A thread reads the table's version, its count of keys and of revoked keys, every half
``bound`` seconds. Keys are never deleted and a revocation is never undone, so every creation
or revocation moves one of the two counts. When the version moves, or cannot be read (the
database is down), the node forgets every key it knew, so a revoked or a new key is in force
on every node within ``bound``: ``FACEID_INDEX_POLL_INTERVAL``, the bound of everything a node
keeps in memory. Until the thread has read a version, and with a bound of 0, nothing is kept
and every request asks the database.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from ..store import ApiKeyRecord

log = logging.getLogger(__name__)

MAX_KEYS = 10_000  # hashes of keys, known or not; past it the node starts again from empty


class KeyCache:
    def __init__(self, bound: float, version: Callable[[], tuple[int, int]]) -> None:
        self.bound = bound
        self._version_of = version
        self._lock = threading.Lock()
        self._keys: dict[str, ApiKeyRecord | None] = {}
        self._version: tuple[int, int] | None = None  # None: unknown, keep nothing
        self._generation = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def get(self, digest: str) -> tuple[bool, ApiKeyRecord | None, int]:
        """(known, the record or None for no such key, the generation to ``put`` with)."""
        with self._lock:
            if digest in self._keys:
                return True, self._keys[digest], self._generation
            return False, None, self._generation

    def put(self, digest: str, record: ApiKeyRecord | None, generation: int) -> None:
        """Keep what a lookup begun at ``generation`` found, unless the table moved since: the
        lookup may have read it before the change that moved it."""
        with self._lock:
            if self._version is None or generation != self._generation:
                return
            if len(self._keys) >= MAX_KEYS:
                self._keys.clear()
            self._keys[digest] = record

    def refresh(self) -> None:
        """Read the table's version; forget every key when it moved or cannot be read."""
        try:
            version: tuple[int, int] | None = self._version_of()
        except Exception as exc:  # the database is down: requests ask it (and answer 503)
            log.debug("API key version unreadable: %s", type(exc).__name__)
            version = None
        with self._lock:
            if version != self._version or version is None:
                self._keys.clear()
                self._generation += 1
            self._version = version

    def start(self) -> None:
        if self.bound <= 0 or self._thread is not None:
            return
        self.refresh()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="faceid-key-cache", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.bound / 2):
            self.refresh()

    def close(self) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stop.set()
            thread.join(timeout=10)
        with self._lock:
            self._keys.clear()
            self._version = None
            self._generation += 1
