"""The galleries of a service: one follower per collection, started lazily, on the configured
vector store (an in-process FAISS index, or a shared Milvus collection: vector_store.py), each
with the :class:`~.live.CollectionState` that ``find`` reads instead of the database.

Freshness: a node answers from state whose last poll of the index log began less than
``FACEID_INDEX_POLL_INTERVAL`` ago. A query that finds it older polls first (one database
round trip). With the background poller on (:meth:`Galleries.start_poller`, as the HTTP API
does) a thread polls every loaded collection every half interval, so a query normally finds
its state fresh and touches no database. A change committed on any node is therefore seen by
every node's queries that start ``FACEID_INDEX_POLL_INTERVAL`` later; this node's own writes
are seen by its next query.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from ..config import Settings
from ..errors import UnknownCollectionError
from ..index import IndexFollower
from ..store import CollectionRecord, FaceOwner, Repository
from .live import CollectionState
from .vector_store import Follower, open_follower

log = logging.getLogger(__name__)

# A poll first asks for the log's last seq only; one a second re-reads the window behind the
# watermark as well (see index/sync.py).
FULL_POLL_EVERY = 1.0


class Galleries:
    def __init__(self, repo: Repository, settings: Settings) -> None:
        self._repo = repo
        self._settings = settings
        self._followers: dict[int, Follower] = {}
        self._states: dict[int, CollectionState] = {}
        self._names: dict[tuple[str, str], int] = {}  # (tenant, name) -> collection id
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None

    @property
    def bound(self) -> float:
        """How stale an answer may be, in seconds (``FACEID_INDEX_POLL_INTERVAL``)."""
        return float(self._settings.index.poll_interval)

    def follower(self, collection: CollectionRecord) -> Follower:
        with self._lock:
            follower = self._followers.get(collection.id)
            if follower is None:
                state = CollectionState(self._repo, collection.id)
                follower = open_follower(self._repo, collection, self._settings, observer=state)
                started = time.monotonic()
                follower.start()
                state.load()
                state.polled_at = started
                self._followers[collection.id] = follower
                self._states[collection.id] = state
            self._names[(collection.tenant, collection.name)] = collection.id
            return follower

    def fresh(self, collection: CollectionRecord, force: bool = False) -> Follower:
        """The collection's follower, caught up with the log first when its last poll began
        ``index.poll_interval`` ago or more (or ``force``: everything committed until now)."""
        follower = self.follower(collection)
        now = time.monotonic()
        if force:
            self._poll(collection.id, now)
        else:
            state = self._states.get(collection.id)
            if state is None or now - state.polled_at >= self.bound:
                self._poll(collection.id, now - self.bound)
        return follower

    def notify_changed(self, collection: CollectionRecord) -> None:
        """This process wrote to the collection: apply it before the next query."""
        if collection.id in self._followers:
            self.fresh(collection, force=True)

    # -- what find reads ----------------------------------------------------------------------
    def lookup(self, tenant: str, name: str, *, poll: bool = True) -> CollectionRecord | None:
        """The fresh record of a loaded collection by name; None when this node does not hold
        it (then ask the database), or holds it stale and ``poll`` is False (never blocks)."""
        collection_id = self._names.get((tenant, name))
        state = self._states.get(collection_id) if collection_id is not None else None
        if state is None or state.record is None:
            return None
        try:
            if time.monotonic() - state.polled_at >= self.bound:
                if not poll:
                    return None
                self._poll(state.collection_id, time.monotonic() - self.bound)
        except UnknownCollectionError:
            return None  # deleted meanwhile: the database lookup says so by name
        record = state.record
        if record is None or (record.tenant, record.name) != (tenant, name):
            return None  # renamed
        return record

    def current(self, collection: CollectionRecord) -> CollectionRecord:
        """The newest record of a loaded collection (``collection`` itself otherwise)."""
        state = self._states.get(collection.id)
        return state.record if state is not None and state.record is not None else collection

    def owners(self, collection: CollectionRecord, face_ids: Sequence[int]) -> dict[int, FaceOwner]:
        state = self._states.get(collection.id)
        if state is None:
            return self._repo.face_owners(face_ids)
        return state.owners_of(face_ids)

    def open_set_id(self, collection: CollectionRecord) -> int | None:
        """The id of the collection's newest open-set calibration."""
        state = self._states.get(collection.id)
        if state is None:
            return self._repo.open_set_newest_id(collection.id, collection.model_tag)
        return state.open_set_id

    def saw_open_set(self, collection: CollectionRecord, record_id: int) -> None:
        """This node stored calibration ``record_id``: it is in force before the log says so."""
        state = self._states.get(collection.id)
        if state is not None:
            state.open_set_id = max(state.open_set_id or 0, record_id)

    def verify_threshold(
        self, collection: CollectionRecord, compute: Callable[[CollectionRecord], Any]
    ) -> Any:
        state = self._states.get(collection.id)
        if state is None or state.record is None:
            return compute(collection)
        return state.verify_threshold(compute)

    # -- polling ------------------------------------------------------------------------------
    def _poll(self, collection_id: int, not_before: float) -> None:
        """Poll unless a poll that began at ``not_before`` or later has completed meanwhile."""
        state = self._states.get(collection_id)
        follower = self._followers.get(collection_id)
        if state is None or follower is None:  # dropped meanwhile
            raise UnknownCollectionError(
                f"unknown collection id {collection_id}", collection_id=collection_id
            )
        with state.poll_lock:
            if state.polled_at >= not_before:
                return
            started = time.monotonic()
            full = started - state.full_poll_at >= FULL_POLL_EVERY
            try:
                if isinstance(follower, IndexFollower):
                    follower.poll(quick=not full)
                else:
                    follower.poll()
                if getattr(follower, "observer", None) is not state:  # tells no observer
                    state.catch_up()
            except UnknownCollectionError:
                self.drop(collection_id)  # deleted, by another node: its log went with it
                raise
            state.polled_at = started
            if full:
                state.full_poll_at = started

    def start_poller(self) -> None:
        """Poll every loaded collection every half ``index.poll_interval`` in a thread, so that
        queries find their state fresh (a no-op when the interval is 0: queries poll)."""
        if self._poller is not None or self.bound <= 0:
            return
        self._stop.clear()
        self._poller = threading.Thread(target=self._run, name="faceid-log-poller", daemon=True)
        self._poller.start()

    def _run(self) -> None:
        period = max(self.bound / 2, 0.001)
        failing = False
        while not self._stop.wait(period):
            try:
                for collection_id in list(self._followers):
                    try:
                        self._poll(collection_id, time.monotonic() - period)
                    except UnknownCollectionError:
                        continue
            except Exception as exc:  # database down: queries poll themselves (and answer 503)
                if not failing:
                    log.warning("index log poll failed: %s; queries poll", type(exc).__name__)
                failing = True
                continue
            if failing:
                log.warning("index log poll works again")
                failing = False

    def close(self) -> None:
        poller, self._poller = self._poller, None
        if poller is not None:
            self._stop.set()
            poller.join(timeout=10)

    # -- admin --------------------------------------------------------------------------------
    def drop(self, collection_id: int) -> None:
        with self._lock:
            self._followers.pop(collection_id, None)
            self._states.pop(collection_id, None)
            for key in [k for k, v in self._names.items() if v == collection_id]:
                del self._names[key]

    def sizes(self) -> dict[int, int]:
        """Vectors in each loaded index, by collection id."""
        with self._lock:
            return {cid: len(f) for cid, f in self._followers.items()}

    def snapshot_all(self) -> None:
        for follower in list(self._followers.values()):
            follower.snapshot()
