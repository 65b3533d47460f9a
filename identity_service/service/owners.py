"""Who owns each face of a collection, in memory: what ``find`` needs to turn face hits into
people without asking the database.

A face's identity never changes for its life, and a deleted face leaves through a ``remove``
entry of the index log, so a table loaded once and fed from the log is exact. It holds the
face ids loaded at start as two sorted arrays (16 bytes a face; a removed face's owner becomes
-1), the faces added since in a dict (merged into the arrays now and then), and each live
identity's external id and name (an ``identity`` entry of the log says one changed).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from ..store import FaceOwner

Name = tuple[str, str | None]  # (external id, display name)


class Owners:
    MERGE_AT = 65_536  # faces added since the last merge that trigger the next one

    def __init__(self) -> None:
        self._ids = np.zeros(0, np.int64)  # sorted face ids
        self._owner = np.zeros(0, np.int64)  # their identity ids; -1: removed
        self._recent: dict[int, int] = {}  # face id -> identity id (-1: removed)
        self._names: dict[int, Name] = {}
        self._lock = threading.Lock()

    def load(
        self, face_ids: np.ndarray, identity_ids: np.ndarray, names: Mapping[int, Name]
    ) -> None:
        order = np.argsort(face_ids, kind="stable")
        with self._lock:
            self._ids = np.asarray(face_ids, np.int64)[order]
            self._owner = np.asarray(identity_ids, np.int64)[order]
            self._recent = {}
            self._names = dict(names)

    def __len__(self) -> int:
        with self._lock:
            live = int(np.count_nonzero(self._owner >= 0))
            return live + sum(1 for owner in self._recent.values() if owner >= 0)

    # -- fed from the log ---------------------------------------------------------------------
    def add(self, faces: Iterable[tuple[int, int]]) -> None:
        with self._lock:
            for face_id, identity_id in faces:
                self._recent[int(face_id)] = int(identity_id)
            if len(self._recent) >= self.MERGE_AT:
                self._merge()

    def remove(self, face_ids: Sequence[int]) -> None:
        wanted = np.asarray(face_ids, np.int64)
        with self._lock:
            for face_id in face_ids:
                if int(face_id) in self._recent:
                    self._recent[int(face_id)] = -1
            if len(self._ids) and len(wanted):
                pos = np.minimum(np.searchsorted(self._ids, wanted), len(self._ids) - 1)
                self._owner[pos[self._ids[pos] == wanted]] = -1

    def set_names(self, names: Mapping[int, Name | None]) -> None:
        """New names; None drops an identity (deleted)."""
        with self._lock:
            for identity_id, name in names.items():
                if name is None:
                    self._names.pop(int(identity_id), None)
                else:
                    self._names[int(identity_id)] = name

    def unnamed(self, identity_ids: Iterable[int]) -> list[int]:
        """The identities among ``identity_ids`` whose names this table lacks."""
        with self._lock:
            return sorted({int(i) for i in identity_ids if int(i) not in self._names})

    # -- read by find -------------------------------------------------------------------------
    def lookup(self, face_ids: Iterable[int]) -> tuple[dict[int, FaceOwner], list[int]]:
        """Owners of the live faces among ``face_ids``, and the ids this table cannot answer
        (not known, or their identity's name is missing): ask the database for those."""
        wanted = np.fromiter((int(i) for i in face_ids if int(i) >= 0), np.int64)
        found: dict[int, FaceOwner] = {}
        unknown: list[int] = []
        with self._lock:
            owners = np.full(len(wanted), -2, np.int64)  # -2: not in the arrays
            if len(self._ids) and len(wanted):
                pos = np.minimum(np.searchsorted(self._ids, wanted), len(self._ids) - 1)
                hit = self._ids[pos] == wanted
                owners[hit] = self._owner[pos[hit]]
            for face_id, owner in zip(wanted.tolist(), owners.tolist(), strict=True):
                owner = self._recent.get(face_id, owner)
                if owner == -1:
                    continue  # removed
                name = self._names.get(owner) if owner >= 0 else None
                if name is None:
                    unknown.append(face_id)
                else:
                    found[face_id] = FaceOwner(face_id, owner, name[0], name[1])
        return found, unknown

    def _merge(self) -> None:
        """Fold the recent faces into the arrays, dropping removed ones (called locked)."""
        keep = self._owner >= 0
        ids = np.concatenate([self._ids[keep], np.fromiter(self._recent, np.int64)])
        owner = np.concatenate(
            [self._owner[keep], np.fromiter(self._recent.values(), np.int64, len(self._recent))]
        )
        ids, first = np.unique(ids[::-1], return_index=True)  # the recent entry wins
        owner = owner[::-1][first]
        keep = owner >= 0
        self._ids, self._owner, self._recent = ids[keep], owner[keep], {}
