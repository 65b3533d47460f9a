"""Repository part for open-set calibration: the faces it samples and the operating points it
stores (see :mod:`identity_service.calibration.open_set`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sqlalchemy import select

from ._base import StoreBase
from .convert import vector
from .models import Face, Identity, OpenSetCalibration
from .records import OpenSetRecord, aware

_IN_CHUNK = 500


def _to_record(row: OpenSetCalibration) -> OpenSetRecord:
    return OpenSetRecord(
        id=row.id,
        collection_id=row.collection_id,
        model=row.model,
        source=row.source,
        gallery_faces=row.gallery_faces,
        gallery_identities=row.gallery_identities,
        n_searches=row.n_searches,
        report=dict(row.report or {}),
        created=aware(row.created),
    )


class OpenSetMixin(StoreBase):
    def face_identities(self, collection_id: int) -> tuple[np.ndarray, np.ndarray]:
        """``(face ids, identity ids)`` of every live face, int64, in face id order."""
        with self._tx() as s:
            rows = s.execute(
                select(Face.id, Face.identity_id)
                .join(Identity, Identity.id == Face.identity_id)
                .where(Face.collection_id == collection_id, Identity.deleted.is_(False))
                .order_by(Face.id)
                .execution_options(yield_per=50_000)
            ).all()
        ids = np.asarray([r[0] for r in rows], dtype=np.int64)
        owners = np.asarray([r[1] for r in rows], dtype=np.int64)
        return ids, owners

    def embeddings_of(self, collection_id: int, face_ids: Sequence[int]) -> np.ndarray:
        """The vectors of ``face_ids`` (all must exist), (n, dim) float32, in the given order."""
        with self._tx() as s:
            coll = self._collection(s, collection_id)
            found: dict[int, bytes] = {}
            wanted = [int(i) for i in face_ids]
            for start in range(0, len(wanted), _IN_CHUNK):
                rows = s.execute(
                    select(Face.id, Face.embedding).where(
                        Face.id.in_(wanted[start : start + _IN_CHUNK])
                    )
                )
                found.update({face_id: blob for face_id, blob in rows})
        blobs = b"".join(found[i] for i in wanted)
        return vector(blobs).reshape(len(wanted), coll.dim)

    def add_open_set_calibration(
        self,
        collection_id: int,
        model: str,
        source: str,
        gallery_faces: int,
        gallery_identities: int,
        n_searches: int,
        report: dict[str, Any],
    ) -> OpenSetRecord:
        row = OpenSetCalibration(
            collection_id=collection_id,
            model=model,
            source=source,
            gallery_faces=int(gallery_faces),
            gallery_identities=int(gallery_identities),
            n_searches=int(n_searches),
            report=report,
        )
        with self._tx(write=True) as s:
            self._collection(s, collection_id, lock=True)
            s.add(row)
            s.flush()
            self._log_change(s, [collection_id], "config")
            return _to_record(row)

    def open_set_newest_id(self, collection_id: int, model: str) -> int | None:
        """The id of the newest open-set calibration (a narrow query for every find)."""
        with self._tx() as s:
            return s.scalar(
                select(OpenSetCalibration.id)
                .where(
                    OpenSetCalibration.collection_id == collection_id,
                    OpenSetCalibration.model == model,
                )
                .order_by(OpenSetCalibration.id.desc())
                .limit(1)
            )

    def open_set_in_force(self, collection_id: int, model: str) -> OpenSetRecord | None:
        """The newest open-set calibration of the collection for its model."""
        stmt = (
            select(OpenSetCalibration)
            .where(
                OpenSetCalibration.collection_id == collection_id,
                OpenSetCalibration.model == model,
            )
            .order_by(OpenSetCalibration.id.desc())
            .limit(1)
        )
        with self._tx() as s:
            row = s.scalar(stmt)
            return None if row is None else _to_record(row)
