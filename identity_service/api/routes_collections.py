"""Collections and identities."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Path, Query

from ..store import IdentityRecord
from .auth import AdminScope, EnrollScope, Principal, QueryScope
from .deps import Runtime, collection_of, collection_out, runtime
from .schemas import (
    CollectionCreate,
    CollectionOut,
    CollectionPage,
    DeletedOut,
    IdentityOut,
    IdentityPage,
    IdentityUpdate,
)

router = APIRouter(prefix="/v1/collections", tags=["collections"])
Rt = Depends(runtime)
Offset = Query(0, ge=0, le=10_000_000)
Limit = Query(50, ge=1, le=1000)


def identity_out(ident: IdentityRecord, faces: int | None = None) -> dict[str, Any]:
    return {
        "external_id": ident.external_id,
        "name": ident.name,
        "metadata": ident.metadata,
        "created": ident.created,
        "faces": faces,
    }


@router.post("", status_code=201, response_model=CollectionOut)
def create_collection(
    body: CollectionCreate, who: Principal = EnrollScope, rt: Runtime = Rt
) -> dict[str, Any]:
    """Create a collection (409 ``duplicate`` if the name is taken in your tenant)."""
    coll = rt.service.for_tenant(who.tenant).create_collection(
        body.name, body.model, threshold=body.threshold
    )
    return collection_out(coll)


@router.get("", response_model=CollectionPage)
def list_collections(
    offset: int = Offset, limit: int = Limit, who: Principal = QueryScope, rt: Runtime = Rt
) -> dict[str, Any]:
    colls = rt.service.repo.list_collections(who.tenant)
    page = colls[offset : offset + limit]
    return {
        "items": [collection_out(c) for c in page],
        "offset": offset,
        "limit": limit,
        "total": len(colls),
    }


@router.get("/{collection}", response_model=CollectionOut)
def get_collection(collection: str, who: Principal = QueryScope, rt: Runtime = Rt) -> Any:
    coll = collection_of(rt, who, collection)
    return collection_out(coll, rt.service.repo.counts(coll.id))


@router.delete("/{collection}", response_model=DeletedOut)
def delete_collection(collection: str, who: Principal = AdminScope, rt: Runtime = Rt) -> Any:
    """Drop a collection with all its identities and faces."""
    coll = collection_of(rt, who, collection)
    faces = rt.service.repo.counts(coll.id).faces
    rt.service.delete_collection(coll)
    return {"deleted": True, "faces_removed": faces}


@router.get("/{collection}/identities", response_model=IdentityPage)
def list_identities(
    collection: str,
    offset: int = Offset,
    limit: int = Limit,
    who: Principal = QueryScope,
    rt: Runtime = Rt,
) -> Any:
    coll = collection_of(rt, who, collection)
    repo = rt.service.repo
    items = repo.list_identities(coll.id, offset=offset, limit=limit)
    return {
        "items": [identity_out(i) for i in items],
        "offset": offset,
        "limit": limit,
        "total": repo.counts(coll.id).identities,
    }


@router.get("/{collection}/identities/{external_id}", response_model=IdentityOut)
def get_identity(
    collection: str, external_id: str, who: Principal = QueryScope, rt: Runtime = Rt
) -> Any:
    coll = collection_of(rt, who, collection)
    repo = rt.service.repo
    ident = repo.get_identity(coll.id, external_id)
    return identity_out(ident, len(repo.faces_of_identity(coll.id, external_id)))


@router.patch("/{collection}/identities/{external_id}", response_model=IdentityOut)
def update_identity(
    collection: str,
    external_id: str,
    body: IdentityUpdate,
    who: Principal = EnrollScope,
    rt: Runtime = Rt,
) -> Any:
    """Change an identity's name and/or metadata (merged by default)."""
    coll = collection_of(rt, who, collection)
    ident = rt.service.repo.update_identity(
        coll.id, external_id, name=body.name, metadata=body.metadata, merge=body.merge
    )
    rt.service.galleries.notify_changed(coll)  # find names the identity anew from now on
    return identity_out(ident)


@router.delete("/{collection}/identities/{external_id}", response_model=DeletedOut)
def delete_identity(
    collection: str, external_id: str, who: Principal = EnrollScope, rt: Runtime = Rt
) -> Any:
    """Remove a person: their faces leave the database and every index."""
    coll = collection_of(rt, who, collection)
    return {"deleted": True, "faces_removed": rt.service.delete_identity(coll, external_id)}


@router.delete("/{collection}/faces/{face_id}", response_model=DeletedOut)
def delete_face(
    collection: str,
    face_id: int = Path(ge=1, le=2**63 - 1),
    who: Principal = EnrollScope,
    rt: Runtime = Rt,
) -> Any:
    coll = collection_of(rt, who, collection)
    rt.service.delete_face(coll, face_id)
    return {"deleted": True, "faces_removed": 1}
