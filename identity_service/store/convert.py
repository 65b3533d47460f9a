"""ORM rows to records, and embeddings to and from their stored bytes."""

from __future__ import annotations

import numpy as np

from ..errors import ModelMismatchError
from .models import Collection, Face, Identity
from .records import CollectionRecord, FaceRecord, IdentityRecord, NewFace, aware


def to_collection(c: Collection) -> CollectionRecord:
    return CollectionRecord(
        id=c.id,
        name=c.name,
        tenant=c.tenant,
        model=c.model,
        model_version=c.model_version,
        dim=c.dim,
        metric=c.metric,
        threshold=c.threshold,
        created=aware(c.created),  # type: ignore[arg-type]
        target_fpir=c.target_fpir,
    )


def to_identity(i: Identity) -> IdentityRecord:
    return IdentityRecord(
        id=i.id,
        collection_id=i.collection_id,
        external_id=i.external_id,
        name=i.name,
        metadata=dict(i.meta or {}),
        created=aware(i.created),  # type: ignore[arg-type]
        deleted=i.deleted,
    )


def to_face(f: Face, identity: Identity) -> FaceRecord:
    return FaceRecord(
        id=f.id,
        identity_id=f.identity_id,
        external_id=identity.external_id,
        image_sha256=f.image_sha256,
        face_index=f.face_index,
        box=list(f.bbox),
        landmarks=[list(p) for p in f.landmarks],
        det_score=f.det_score,
        quality=f.quality,
        model=f.model,
        name=identity.name,
        created=aware(f.created),
    )


def vector(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype="<f4").astype(np.float32)


def embedding_bytes(face: NewFace, coll: CollectionRecord) -> bytes:
    if face.model != coll.model_tag:
        raise ModelMismatchError(
            f"face was embedded by {face.model!r} but collection {coll.name!r} holds "
            f"{coll.model_tag!r} embeddings",
            collection=coll.name,
            expected=coll.model_tag,
            got=face.model,
        )
    vec = np.asarray(face.embedding)
    if vec.ndim != 1 or vec.shape[0] != coll.dim:
        raise ModelMismatchError(
            f"embedding has shape {vec.shape} but collection {coll.name!r} expects "
            f"({coll.dim},) vectors from {coll.model_tag!r}",
            collection=coll.name,
            expected_dim=coll.dim,
            got_shape=list(vec.shape),
        )
    if not np.all(np.isfinite(vec)):
        raise ValueError("embedding contains NaN or infinite values")
    return vec.astype("<f4").tobytes()
