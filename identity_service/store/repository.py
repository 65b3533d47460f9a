"""The repository: the only code that reads or writes faceid's database.

Consistency rules the index layer relies on:

* Every change to a collection's set of faces (add, delete face, delete identity) writes its
  ``index_log`` rows in the same transaction as the change itself.
* Such transactions first lock the collection row (``SELECT ... FOR NO KEY UPDATE``; SQLite
  serialises all writers anyway), so within one collection ``index_log`` rows become visible
  strictly in ``seq`` order. A Postgres sequence alone would not give this: a transaction that
  drew seq 10 can commit after one that drew seq 11, and a follower that had already read 11
  would skip 10 for ever. With the lock, a follower can keep a plain watermark: after reading
  up to ``seq`` it never needs to look below it again, and ``log_since(watermark)`` is exact.
  (Seq numbers are shared by all collections, so one collection's seqs have gaps.)
* Changes that query nodes cache (a collection's settings, name and calibrations; an
  identity's name, metadata and tombstone) log a ``config`` or ``identity`` row the same way,
  so one poll of the log tells a node what to read again.
* ``all_embeddings`` reads the faces and ``max_seq`` in one snapshot, so a gallery built from
  it and then fed ``log_since(max_seq)`` misses nothing and applies nothing twice.

Deleting removes face rows physically (a face's embedding is never needed again) and only
tombstones the identity. ``upsert_identity`` on a tombstoned external id replaces the tombstone
with a new identity (a new id, the name and metadata given, a new creation time): an enrollment
batch still holding the deleted identity's id then fails with UnknownIdentityError instead of
adding the deleted person's photos to the new one. ``purge`` drops tombstones for good.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError

from ..errors import DuplicateError, UnknownCollectionError
from .admin import AdminMixin
from .convert import to_collection, to_identity
from .faces import FacesMixin
from .metadata import check_metadata
from .models import Calibration, Collection, Face, Identity, IndexLog, OpenSetCalibration
from .open_set import OpenSetMixin
from .records import CollectionCounts, CollectionRecord, IdentityRecord


class Repository(FacesMixin, OpenSetMixin, AdminMixin):
    # ---- collections ------------------------------------------------------------------

    def create_collection(
        self,
        name: str,
        model: str,
        model_version: str,
        dim: int,
        metric: str = "cosine",
        tenant: str = "default",
        threshold: float | None = None,
        target_fpir: float | None = None,
    ) -> CollectionRecord:
        if dim <= 0:
            raise ValueError(f"dim must be positive, got {dim}")
        row = Collection(
            name=name,
            tenant=tenant,
            model=model,
            model_version=model_version,
            dim=dim,
            metric=metric,
            threshold=threshold,
            target_fpir=target_fpir,
        )
        try:
            with self._tx(write=True) as s:
                s.add(row)
                s.flush()
                return to_collection(row)
        except IntegrityError as exc:
            raise DuplicateError(
                f"collection {name!r} already exists for tenant {tenant!r}",
                collection=name,
                tenant=tenant,
            ) from exc

    def get_collection(self, name: str, tenant: str = "default") -> CollectionRecord:
        with self._tx() as s:
            row = s.scalar(
                select(Collection).where(Collection.tenant == tenant, Collection.name == name)
            )
            if row is None:
                raise UnknownCollectionError(
                    f"unknown collection {name!r} (tenant {tenant!r})",
                    collection=name,
                    tenant=tenant,
                )
            return to_collection(row)

    def get_collection_by_id(self, collection_id: int) -> CollectionRecord:
        with self._tx() as s:
            return to_collection(self._collection(s, collection_id))

    def list_collections(self, tenant: str | None = None) -> list[CollectionRecord]:
        stmt = select(Collection).order_by(Collection.tenant, Collection.name)
        if tenant is not None:
            stmt = stmt.where(Collection.tenant == tenant)
        with self._tx() as s:
            return [to_collection(c) for c in s.scalars(stmt)]

    def set_threshold(self, collection_id: int, threshold: float | None) -> CollectionRecord:
        with self._tx(write=True) as s:
            row = self._collection(s, collection_id, lock=True)
            row.threshold = threshold
            self._log_change(s, [collection_id], "config")
            return to_collection(row)

    def set_target_fpir(self, collection_id: int, target_fpir: float | None) -> CollectionRecord:
        with self._tx(write=True) as s:
            row = self._collection(s, collection_id, lock=True)
            row.target_fpir = target_fpir
            self._log_change(s, [collection_id], "config")
            s.flush()
            return to_collection(row)

    def delete_collection(self, collection_id: int) -> None:
        """Drop a collection with all its identities, faces and log (followers must drop
        their index for it: its log is gone too)."""
        with self._tx(write=True) as s:
            self._collection(s, collection_id, lock=True)
            for model in (IndexLog, Face, Identity, OpenSetCalibration):
                s.execute(delete(model).where(model.collection_id == collection_id))
            s.execute(
                Calibration.__table__.update()
                .where(Calibration.collection_id == collection_id)
                .values(collection_id=None)
            )
            s.execute(delete(Collection).where(Collection.id == collection_id))

    def counts(self, collection_id: int) -> CollectionCounts:
        with self._tx(snapshot=True) as s:
            self._collection(s, collection_id)
            identities = s.scalar(
                select(func.count())
                .select_from(Identity)
                .where(Identity.collection_id == collection_id, Identity.deleted.is_(False))
            )
            faces = s.scalar(
                select(func.count()).select_from(Face).where(Face.collection_id == collection_id)
            )
            return CollectionCounts(identities=identities or 0, faces=faces or 0)

    # ---- identities -------------------------------------------------------------------

    def upsert_identity(
        self,
        collection_id: int,
        external_id: str,
        name: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> IdentityRecord:
        """Create the identity, or update it: a given ``name`` or ``metadata`` replaces the
        stored one, None keeps it. A deleted identity's external id starts a new identity
        (see the module notes)."""
        check_metadata(metadata)
        changes = name is not None or metadata is not None
        with self._tx(write=True) as s:
            # A new identity takes no collection lock (its faces' log rows name it); changing
            # an existing one's name or metadata is logged for query nodes, under the lock,
            # taken first as every log writer does.
            exists = s.scalar(
                select(Identity.id).where(
                    Identity.collection_id == collection_id,
                    Identity.external_id == external_id,
                    Identity.deleted.is_(False),
                )
            )
            self._collection(s, collection_id, lock=exists is not None and changes)
            s.execute(
                delete(Identity).where(
                    Identity.collection_id == collection_id,
                    Identity.external_id == external_id,
                    Identity.deleted.is_(True),
                )
            )
            inserted = s.execute(
                self._insert(Identity.__table__)
                .values(
                    collection_id=collection_id,
                    external_id=external_id,
                    name=name,
                    metadata=metadata or {},
                    deleted=False,
                )
                .on_conflict_do_nothing(index_elements=["collection_id", "external_id"])
                .returning(Identity.id)
            ).first()
            row = s.scalar(
                select(Identity)
                .where(Identity.collection_id == collection_id, Identity.external_id == external_id)
                .with_for_update()
            )
            assert row is not None
            if inserted is None and changes:
                if name is not None:
                    row.name = name
                if metadata is not None:
                    row.meta = dict(metadata)
                self._log_change(s, [collection_id], "identity", row.id)
            s.flush()
            return to_identity(row)

    def get_identity(self, collection_id: int, external_id: str) -> IdentityRecord:
        with self._tx() as s:
            return to_identity(self._identity(s, collection_id, external_id))

    def list_identities(
        self, collection_id: int, offset: int = 0, limit: int = 100
    ) -> list[IdentityRecord]:
        with self._tx() as s:
            self._collection(s, collection_id)
            rows = s.scalars(
                select(Identity)
                .where(Identity.collection_id == collection_id, Identity.deleted.is_(False))
                .order_by(Identity.id)
                .offset(offset)
                .limit(limit)
            )
            return [to_identity(i) for i in rows]

    def update_identity(
        self,
        collection_id: int,
        external_id: str,
        *,
        name: str | None = None,
        metadata: dict[str, Any] | None = None,
        merge: bool = True,
    ) -> IdentityRecord:
        """Change name and/or metadata; ``merge`` updates metadata keys instead of replacing."""
        check_metadata(metadata)
        with self._tx(write=True) as s:
            self._collection(s, collection_id, lock=True)
            row = self._identity(s, collection_id, external_id, lock=True)
            if name is not None:
                row.name = name
            if metadata is not None:
                row.meta = {**(row.meta or {}), **metadata} if merge else dict(metadata)
            self._log_change(s, [collection_id], "identity", row.id)
            s.flush()
            return to_identity(row)

    def update_identity_metadata(
        self, collection_id: int, external_id: str, metadata: dict[str, Any], merge: bool = True
    ) -> IdentityRecord:
        return self.update_identity(collection_id, external_id, metadata=metadata, merge=merge)

    def delete_identity(self, collection_id: int, external_id: str) -> int:
        """Tombstone the identity and remove its faces; returns how many faces went."""
        with self._tx(write=True) as s:
            self._collection(s, collection_id, lock=True)
            row = self._identity(s, collection_id, external_id)
            face_ids = list(s.scalars(select(Face.id).where(Face.identity_id == row.id)))
            self._remove_faces(s, collection_id, face_ids)
            row.deleted = True  # its faces' 'remove' rows tell query nodes
            return len(face_ids)

    def purge(self, collection_id: int) -> int:
        """Physically delete tombstoned identities; returns how many."""
        with self._tx(write=True) as s:
            self._collection(s, collection_id, lock=True)
            result = s.execute(
                delete(Identity).where(
                    Identity.collection_id == collection_id, Identity.deleted.is_(True)
                )
            )
            return int(result.rowcount or 0)  # type: ignore[attr-defined]
