"""Repository part for faces, the index log and embedding reads (see repository.py)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from sqlalchemy import and_, delete, func, select
from sqlalchemy.orm import Session

from ..errors import UnknownCollectionError, UnknownFaceError, UnknownIdentityError
from ._base import StoreBase
from .convert import embedding_bytes, to_collection, to_face, vector
from .models import Collection, Face, Identity, IndexLog
from .records import FaceOwner, FaceRecord, LogEntry, NewFace

_IN_CHUNK = 500  # ids per IN (...) list; keeps well under SQLite's bound-parameter limit


class FacesMixin(StoreBase):
    # ---- faces ------------------------------------------------------------------------

    def add_faces(
        self, collection_id: int, identity_id: int, faces: Sequence[NewFace]
    ) -> list[int]:
        """Store faces for an identity and log them; returns the ids of the faces that were
        new, in input order. A face whose (image_sha256, face_index) the identity already has
        is skipped, also when a concurrent call stores it first."""
        with self._tx(write=True) as s:
            coll = to_collection(self._collection(s, collection_id, lock=True))
            ident = s.scalar(
                select(Identity).where(
                    Identity.id == identity_id,
                    Identity.collection_id == collection_id,
                    Identity.deleted.is_(False),
                )
            )
            if ident is None:
                raise UnknownIdentityError(
                    f"unknown identity id {identity_id} in collection {coll.name!r}",
                    collection=coll.name,
                    identity_id=identity_id,
                )
            rows: dict[tuple[str, int], dict[str, Any]] = {}
            for face in faces:
                blob = embedding_bytes(face, coll)
                rows.setdefault(
                    face.key,
                    {
                        "identity_id": identity_id,
                        "collection_id": collection_id,
                        "image_sha256": face.image_sha256,
                        "face_index": int(face.face_index),
                        "bbox": [float(v) for v in face.box],
                        "landmarks": [[float(v) for v in p] for p in face.landmarks],
                        "det_score": float(face.det_score),
                        "quality": None if face.quality is None else float(face.quality),
                        "embedding": blob,
                        "model": face.model,
                    },
                )
            if not rows:
                return []
            stmt = (
                self._insert(Face.__table__)
                .on_conflict_do_nothing(
                    index_elements=["identity_id", "image_sha256", "face_index"]
                )
                .returning(Face.id, Face.image_sha256, Face.face_index)
            )
            result = s.execute(stmt, list(rows.values()))
            new = {(sha, idx): fid for fid, sha, idx in result}
            new_ids = [new[key] for key in rows if key in new]
            if new_ids:
                s.execute(
                    IndexLog.__table__.insert(),
                    [{"collection_id": collection_id, "face_id": f, "op": "add"} for f in new_ids],
                )
            return new_ids

    def delete_face(self, collection_id: int, face_id: int) -> None:
        with self._tx(write=True) as s:
            self._collection(s, collection_id, lock=True)
            found = s.scalar(
                select(Face.id).where(Face.id == face_id, Face.collection_id == collection_id)
            )
            if found is None:
                raise UnknownFaceError(
                    f"unknown face {face_id} in collection {collection_id}", face_id=face_id
                )
            self._remove_faces(s, collection_id, [face_id])

    def faces_by_ids(self, ids: Iterable[int]) -> dict[int, FaceRecord]:
        """The faces among ``ids`` that still exist (deleted ones are left out)."""
        wanted = sorted({int(i) for i in ids})
        out: dict[int, FaceRecord] = {}
        with self._tx() as s:
            for start in range(0, len(wanted), _IN_CHUNK):
                chunk = wanted[start : start + _IN_CHUNK]
                rows = s.execute(
                    select(Face, Identity)
                    .join(Identity, Identity.id == Face.identity_id)
                    .where(Face.id.in_(chunk), Identity.deleted.is_(False))
                )
                for face, ident in rows:
                    out[face.id] = to_face(face, ident)
        return out

    def face_owners(self, ids: Iterable[int]) -> dict[int, FaceOwner]:
        """Who owns each of ``ids`` that still exists: four columns, no embeddings or boxes,
        so a search's ranking costs one narrow query."""
        wanted = sorted({int(i) for i in ids})
        out: dict[int, FaceOwner] = {}
        with self._tx() as s:
            for start in range(0, len(wanted), _IN_CHUNK):
                rows = s.execute(
                    select(Face.id, Face.identity_id, Identity.external_id, Identity.name)
                    .join(Identity, Identity.id == Face.identity_id)
                    .where(Face.id.in_(wanted[start : start + _IN_CHUNK]))
                    .where(Identity.deleted.is_(False))
                )
                for face_id, identity_id, external_id, name in rows:
                    out[face_id] = FaceOwner(face_id, identity_id, external_id, name)
        return out

    def identity_names(
        self, collection_id: int, ids: Iterable[int] | None = None
    ) -> dict[int, tuple[str, str | None]]:
        """``identity id -> (external id, name)`` of the collection's live identities (only
        those among ``ids`` when given): what a query node keeps to name its matches."""
        stmt = select(Identity.id, Identity.external_id, Identity.name).where(
            Identity.collection_id == collection_id, Identity.deleted.is_(False)
        )
        out: dict[int, tuple[str, str | None]] = {}
        with self._tx() as s:
            if ids is None:
                rows = s.execute(stmt.execution_options(yield_per=50_000))
                out.update({i: (ext, name) for i, ext, name in rows})
                return out
            wanted = sorted({int(i) for i in ids})
            for start in range(0, len(wanted), _IN_CHUNK):
                chunk = wanted[start : start + _IN_CHUNK]
                rows = s.execute(stmt.where(Identity.id.in_(chunk)))
                out.update({i: (ext, name) for i, ext, name in rows})
        return out

    def faces_of_identity(self, collection_id: int, external_id: str) -> list[FaceRecord]:
        with self._tx() as s:
            ident = self._identity(s, collection_id, external_id)
            faces = s.scalars(select(Face).where(Face.identity_id == ident.id).order_by(Face.id))
            return [to_face(f, ident) for f in faces]

    def known_images(self, collection_id: int) -> set[tuple[str, str]]:
        """``(external_id, image_sha256)`` of every stored face: lets an import skip images it
        already holds before paying for detection and embedding."""
        with self._tx() as s:
            rows = s.execute(
                select(Identity.external_id, Face.image_sha256)
                .join(Face, Face.identity_id == Identity.id)
                .where(Face.collection_id == collection_id, Identity.deleted.is_(False))
            )
            return {(r[0], r[1]) for r in rows}

    def identity_embeddings(self, collection_id: int, external_id: str) -> np.ndarray:
        """The identity's vectors, (n, dim) float32, in face id order."""
        with self._tx() as s:
            coll = self._collection(s, collection_id)
            ident = self._identity(s, collection_id, external_id)
            blobs = s.scalars(
                select(Face.embedding).where(Face.identity_id == ident.id).order_by(Face.id)
            ).all()
            return vector(b"".join(blobs)).reshape(len(blobs), coll.dim)

    def all_embeddings(self, collection_id: int) -> tuple[np.ndarray, np.ndarray, int]:
        """(face ids int64 (n,), vectors float32 (n, dim), max_seq): every face alive as of
        log position ``max_seq``, read from one snapshot."""
        with self._tx(snapshot=True) as s:
            coll = self._collection(s, collection_id)
            seq = self._max_seq(s, collection_id)
            ids: list[int] = []
            blobs: list[bytes] = []
            rows = s.execute(
                select(Face.id, Face.embedding)
                .where(Face.collection_id == collection_id)
                .order_by(Face.id)
                .execution_options(yield_per=10_000)
            )
            for face_id, blob in rows:
                ids.append(face_id)
                blobs.append(blob)
            vectors = vector(b"".join(blobs)).reshape(len(ids), coll.dim)
            return np.asarray(ids, dtype=np.int64), vectors, seq

    def log_since(
        self,
        collection_id: int,
        seq: int,
        limit: int | None = None,
        *,
        embeddings_after: int | None = None,
    ) -> list[LogEntry]:
        """Log rows after ``seq``, in seq order, at most ``limit`` of them. Adds at or below
        ``embeddings_after`` come without their embedding and owner (None, as for a deleted
        face)."""
        joined = and_(Face.id == IndexLog.face_id, IndexLog.op == "add")
        if embeddings_after is not None:
            joined = and_(joined, IndexLog.seq > embeddings_after)
        with self._tx() as s:
            self._collection(s, collection_id)
            stmt = (
                select(
                    IndexLog.seq, IndexLog.face_id, IndexLog.op, Face.embedding, Face.identity_id
                )
                .outerjoin(Face, joined)
                .where(IndexLog.collection_id == collection_id, IndexLog.seq > seq)
                .order_by(IndexLog.seq)
            )
            if limit is not None:
                stmt = stmt.limit(limit)
            return [
                LogEntry(q, f, op, None if b is None else vector(b), owner)
                for q, f, op, b, owner in s.execute(stmt)
            ]

    def max_seq(self, collection_id: int) -> int:
        """The collection's last log position; 0 when its log is empty. One narrow statement
        on a plain connection: query nodes ask it many times a second."""
        head = (
            select(func.max(IndexLog.seq))
            .where(IndexLog.collection_id == Collection.id)
            .scalar_subquery()
        )
        with self._engine.connect() as conn:
            row = conn.execute(select(Collection.id, head).where(Collection.id == collection_id))
            found = row.first()
        if found is None:
            raise UnknownCollectionError(
                f"unknown collection id {collection_id}", collection_id=collection_id
            )
        return int(found[1] or 0)

    def faces_added_total(self) -> int:
        """Faces ever added to any collection, by any path: the ``add`` rows of the index log.
        Deleting a face does not lower it (that logs a ``remove``); deleting a collection
        does, as its log goes with it."""
        with self._tx() as s:
            added = s.scalar(select(func.count()).select_from(IndexLog).where(IndexLog.op == "add"))
            return int(added or 0)

    @staticmethod
    def _remove_faces(s: Session, collection_id: int, face_ids: list[int]) -> None:
        """Delete faces and log their removal; the caller holds the collection lock."""
        for start in range(0, len(face_ids), _IN_CHUNK):
            chunk = face_ids[start : start + _IN_CHUNK]
            s.execute(delete(Face).where(Face.id.in_(chunk)))
        if face_ids:
            s.execute(
                IndexLog.__table__.insert(),
                [{"collection_id": collection_id, "face_id": f, "op": "remove"} for f in face_ids],
            )
