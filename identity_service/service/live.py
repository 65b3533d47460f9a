"""What a query node keeps in memory about one collection beside its index: the collection
record, the owners of its faces, the id of its open-set calibration in force and its 1:1
threshold in force. It is the index follower's :class:`~identity_service.index.LogObserver`,
so the one poll of the index log that moves the index also tells it what changed (a face was
added or removed; ``config``: the collection's settings, name or a calibration; ``identity``: an
identity's name or tombstone). ``polled_at`` says how fresh all of it is. A follower that tells
no observer (a store shared by every node, which one node applies the log to) leaves the state
to read the log after its own watermark: :meth:`CollectionState.catch_up`.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence
from typing import Any

from ..index import LogEntry
from ..store import CollectionRecord, FaceOwner, Repository
from .owners import Owners


class CollectionState:
    def __init__(self, repo: Repository, collection_id: int) -> None:
        self._repo = repo
        self.collection_id = collection_id
        self.record: CollectionRecord | None = None
        self.owners = Owners()
        self.open_set_id: int | None = None
        self._verify: Any = None  # the 1:1 threshold in force, computed on first use
        self.loaded = False
        self.seq = 0  # how far catch_up has read the log
        # Monotonic time at which the last completed poll began: every commit before it is in.
        self.polled_at = -math.inf
        self.full_poll_at = -math.inf  # the last poll that re-read the whole window
        self.poll_lock = threading.Lock()

    def load(self) -> None:
        """Read everything, after the follower has started: a change committed since its
        watermark is read here and again from the log (both idempotent)."""
        self.seq = self._repo.max_seq(self.collection_id)
        self._reload_config()
        face_ids, identity_ids = self._repo.face_identities(self.collection_id)
        self.owners.load(face_ids, identity_ids, self._repo.identity_names(self.collection_id))
        self.loaded = True

    def catch_up(self) -> None:
        """Apply the log after ``seq`` to the caches (for a follower with no observer)."""
        entries = self._repo.log_since(self.collection_id, self.seq)
        if not entries:
            return
        removed = [int(e.face_id) for e in entries if e.op == "remove"]
        added = [(int(e.face_id), e.identity_id) for e in entries if e.op == "add"]
        gone = set(removed)
        self.adding([(f, i) for f, i in added if f not in gone and i is not None])
        self.removed(removed)
        self.changed([e for e in entries if e.op in ("config", "identity")])
        self.seq = int(entries[-1].seq)

    def verify_threshold(self, compute: Callable[[CollectionRecord], Any]) -> Any:
        """The 1:1 threshold in force (``compute``'s answer, kept until a ``config`` change)."""
        cached = self._verify
        if cached is None:
            assert self.record is not None
            cached = self._verify = compute(self.record)
        return cached

    def owners_of(self, face_ids: Sequence[int]) -> dict[int, FaceOwner]:
        """Owners of the live faces among ``face_ids``: from memory, and from the database for
        any the table cannot answer (a face the index took before this table heard of it)."""
        found, unknown = self.owners.lookup(face_ids)
        if unknown:
            found.update(self._repo.face_owners(unknown))
        return found

    # -- LogObserver --------------------------------------------------------------------------
    def adding(self, faces: Sequence[tuple[int, int | None]]) -> None:
        if not self.loaded:
            return
        known = [(f, i) for f, i in faces if i is not None]
        unnamed = self.owners.unnamed(i for _, i in known)
        if unnamed:
            self.owners.set_names(self._repo.identity_names(self.collection_id, unnamed))
        self.owners.add(known)  # faces without an owner are looked up in the database

    def removed(self, face_ids: Sequence[int]) -> None:
        if self.loaded:
            self.owners.remove(face_ids)

    def changed(self, entries: Sequence[LogEntry]) -> None:
        if not self.loaded:
            return
        identities = sorted({int(e.face_id) for e in entries if e.op == "identity"})
        if identities:
            names = self._repo.identity_names(self.collection_id, identities)
            self.owners.set_names({i: names.get(i) for i in identities})
        if any(e.op == "config" for e in entries):
            self._reload_config()

    def _reload_config(self) -> None:
        record = self._repo.get_collection_by_id(self.collection_id)
        self.open_set_id = self._repo.open_set_newest_id(self.collection_id, record.model_tag)
        self.record = record
        self._verify = None
