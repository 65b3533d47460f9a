"""The in-process FAISS galleries of a service: one follower per collection, started lazily."""

from __future__ import annotations

import threading
import time

from ..config import Settings
from ..index import IndexFollower
from ..store import CollectionRecord, Repository


class Galleries:
    def __init__(self, repo: Repository, settings: Settings) -> None:
        self._repo = repo
        self._settings = settings
        self._followers: dict[int, IndexFollower] = {}
        self._last_poll: dict[int, float] = {}
        self._lock = threading.Lock()

    def follower(self, collection: CollectionRecord) -> IndexFollower:
        with self._lock:
            follower = self._followers.get(collection.id)
            if follower is None:
                follower = IndexFollower(
                    self._repo,
                    collection.id,
                    collection.dim,
                    self._settings.data_dir / "index",
                    kind=self._settings.index_kind,
                    gpu=self._settings.index_gpu,
                )
                follower.start()
                self._followers[collection.id] = follower
                self._last_poll[collection.id] = time.monotonic()
            return follower

    def fresh(self, collection: CollectionRecord, force: bool = False) -> IndexFollower:
        """The collection's follower, caught up with the log if the last poll is older than
        ``index_poll_interval`` (or ``force``): other processes' writes show up that fast."""
        follower = self.follower(collection)
        now = time.monotonic()
        if force or now - self._last_poll.get(collection.id, 0.0) >= (
            self._settings.index_poll_interval
        ):
            follower.poll()
            self._last_poll[collection.id] = now
        return follower

    def notify_changed(self, collection: CollectionRecord) -> None:
        """This process wrote to the collection: apply it before the next query."""
        if collection.id in self._followers:
            self.fresh(collection, force=True)

    def drop(self, collection_id: int) -> None:
        with self._lock:
            self._followers.pop(collection_id, None)

    def sizes(self) -> dict[int, int]:
        """Vectors in each loaded index, by collection id."""
        with self._lock:
            return {cid: len(f) for cid, f in self._followers.items()}

    def snapshot_all(self) -> None:
        for follower in list(self._followers.values()):
            follower.snapshot()
