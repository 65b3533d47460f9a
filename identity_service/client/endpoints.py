"""Every API method of the client, written once: what to send and how to read the answer.

:class:`~identity_service.client.FaceIDClient` runs them synchronously,
:class:`~identity_service.client.AsyncFaceIDClient` as coroutines (see :class:`endpoint`)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any

import numpy as np

from .calls import Call, ClientImage, endpoint, image_part, seg
from .models import (
    Analysis,
    Collection,
    EnrollResult,
    FaceInfo,
    Identity,
    Job,
    Matches,
    OperatingPoint,
    Page,
    Verification,
    enroll_result_from_dict,
    match_from_dict,
)


class Endpoints:
    """The API's methods; a subclass supplies ``_execute`` (sync or async)."""

    # -- health -----------------------------------------------------------------------------
    @endpoint
    def health(self) -> Call[dict[str, Any]]:
        return Call("GET", "/healthz", _as_is)

    @endpoint
    def ready(self) -> Call[dict[str, Any]]:
        """The readiness checks; raises ServiceUnavailableError when not ready."""
        return Call("GET", "/readyz", _as_is)

    # -- collections and identities ---------------------------------------------------------
    @endpoint
    def create_collection(
        self, name: str, model: str | None = None, threshold: float | None = None
    ) -> Call[Collection]:
        body = {"name": name, "model": model, "threshold": threshold}
        return Call("POST", "/v1/collections", _collection, json=body)

    @endpoint
    def collection(self, name: str) -> Call[Collection]:
        return Call("GET", f"/v1/collections/{seg(name)}", _collection)

    @endpoint
    def collections(self, offset: int = 0, limit: int = 50) -> Call[Page[Collection]]:
        params = {"offset": offset, "limit": limit}
        return Call("GET", "/v1/collections", _collection_page, params=params)

    @endpoint
    def delete_collection(self, name: str) -> Call[int]:
        return Call("DELETE", f"/v1/collections/{seg(name)}", _faces_removed)

    @endpoint
    def identities(self, collection: str, offset: int = 0, limit: int = 50) -> Call[Page[Identity]]:
        path = f"/v1/collections/{seg(collection)}/identities"
        return Call("GET", path, _identity_page, params={"offset": offset, "limit": limit})

    @endpoint
    def identity(self, collection: str, external_id: str) -> Call[Identity]:
        return Call("GET", _identity_path(collection, external_id), _identity)

    @endpoint
    def update_identity(
        self,
        collection: str,
        external_id: str,
        *,
        name: str | None = None,
        metadata: dict[str, Any] | None = None,
        merge: bool = True,
    ) -> Call[Identity]:
        body = {"name": name, "metadata": metadata, "merge": merge}
        return Call("PATCH", _identity_path(collection, external_id), _identity, json=body)

    @endpoint
    def delete_identity(self, collection: str, external_id: str) -> Call[int]:
        """Remove a person; returns how many faces went."""
        return Call("DELETE", _identity_path(collection, external_id), _faces_removed)

    @endpoint
    def delete_face(self, collection: str, face_id: int) -> Call[None]:
        path = f"/v1/collections/{seg(collection)}/faces/{int(face_id)}"
        return Call("DELETE", path, _ignore)

    # -- enrollment and jobs ----------------------------------------------------------------
    @endpoint
    def enroll(
        self,
        collection: str,
        external_id: str,
        images: ClientImage | Sequence[ClientImage],
        name: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Call[EnrollResult]:
        if not isinstance(images, (list, tuple)):
            images = [images]  # type: ignore[list-item]
        files = [("images", image_part(img, f"image{i}")) for i, img in enumerate(images)]
        data: dict[str, str] = {"external_id": external_id}
        if name is not None:
            data["name"] = name
        if metadata is not None:
            data["metadata"] = json.dumps(metadata)
        path = f"/v1/collections/{seg(collection)}/enroll"
        return Call("POST", path, enroll_result_from_dict, data=data, files=files)

    @endpoint
    def enroll_job(
        self,
        collection: str,
        path: str,
        batch_size: int = 32,
        limit: int | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> Call[Job]:
        """Enroll a folder on the server (needs FACEID_API_ALLOW_SERVER_PATHS there). The call
        carries an ``Idempotency-Key`` (a fresh one unless given), so its retries after a 503
        or a lost answer find the job the first attempt created instead of making another."""
        body = {"path": str(path), "batch_size": batch_size, "limit": limit}
        url = f"/v1/collections/{seg(collection)}/enroll-jobs"
        key = idempotency_key or uuid.uuid4().hex
        return Call("POST", url, self._job, json=body, headers={"Idempotency-Key": key})

    @endpoint
    def job(self, job_id: str) -> Call[Job]:
        return Call("GET", f"/v1/jobs/{seg(job_id)}", self._job)

    @endpoint
    def jobs(self, limit: int = 50, status: str | None = None) -> Call[list[Job]]:
        params: dict[str, Any] = {"limit": limit}
        if status:
            params["status"] = status
        return Call("GET", "/v1/jobs", lambda d: [self._job(j) for j in d], params=params)

    @endpoint
    def reindex(self, collection: str) -> Call[Job]:
        return Call("POST", f"/v1/collections/{seg(collection)}/reindex", self._job)

    def _job(self, d: dict[str, Any]) -> Job:
        return Job.from_dict(d, self)  # type: ignore[arg-type]  # a subclass: a client

    # -- queries ----------------------------------------------------------------------------
    @endpoint
    def find(
        self,
        collection: str,
        image: ClientImage | None = None,
        k: int = 5,
        *,
        embedding: Sequence[float] | np.ndarray | None = None,
        aggregate: str = "max",
        threshold: float | None = None,
        fpir: float | None = None,
    ) -> Call[Matches]:
        """Ranked candidate identities; ``matches[0].accepted`` False means unknown, and
        ``matches.operating_point`` says which threshold decided (target FPIR, gallery size,
        source). ``fpir`` asks for another FPIR, ``threshold`` for a fixed distance.

        The probe is ``image`` (its centre-most face), or ``embedding``: a vector of the
        collection's model (from :meth:`represent`, or computed at the edge or on GPU workers).
        An embedding travels as JSON and the server runs no model for it: the path for callers
        that embed themselves, and the fastest find (see docs/benchmarks.md)."""
        if (image is None) == (embedding is None):
            raise ValueError("find takes an image or an embedding")
        path = f"/v1/collections/{seg(collection)}/find"
        if embedding is not None:
            vector = np.asarray(embedding, dtype=np.float32).reshape(-1)
            body: dict[str, Any] = {"embedding": vector.tolist(), "k": k, "aggregate": aggregate}
            extra = (("threshold", threshold), ("fpir", fpir))
            body.update({n: v for n, v in extra if v is not None})
            return Call("POST", path, _matches, json=body)
        data: dict[str, str] = {"k": str(k), "aggregate": aggregate}
        if threshold is not None:
            data["threshold"] = str(threshold)
        if fpir is not None:
            data["fpir"] = str(fpir)
        return Call("POST", path, _matches, data=data, files={"image": image_part(image)})

    @endpoint
    def verify(
        self,
        image1: ClientImage,
        image2: ClientImage | None = None,
        *,
        collection: str | None = None,
        identity: str | None = None,
    ) -> Call[Verification]:
        """Two images, or ``image1`` against ``identity`` of ``collection``."""
        files = {"image1": image_part(image1, "image1")}
        if image2 is not None:
            files["image2"] = image_part(image2, "image2")
        data = {k: v for k, v in (("collection", collection), ("identity", identity)) if v}
        return Call("POST", "/v1/verify", Verification.from_dict, data=data, files=files)

    @endpoint
    def represent(
        self, image: ClientImage, max_faces: int | None = None, collection: str | None = None
    ) -> Call[list[FaceInfo]]:
        data: dict[str, str] = {}
        if max_faces is not None:
            data["max_faces"] = str(max_faces)
        if collection is not None:
            data["collection"] = collection
        files = {"image": image_part(image)}
        return Call("POST", "/v1/represent", _face_infos, data=data, files=files)

    @endpoint
    def analyze(
        self,
        image: ClientImage,
        actions: tuple[str, ...] = ("age", "gender", "emotion", "race"),
        max_faces: int | None = None,
    ) -> Call[list[Analysis]]:
        """Age, gender, emotion and race of every face, centre-most first."""
        data = {"actions": ",".join(actions)}
        if max_faces is not None:
            data["max_faces"] = str(max_faces)
        files = {"image": image_part(image)}
        return Call("POST", "/v1/analyze", _analyses, data=data, files=files)


def _identity_path(collection: str, external_id: str) -> str:
    return f"/v1/collections/{seg(collection)}/identities/{seg(external_id)}"


# -- answers ----------------------------------------------------------------------------------
def _as_is(d: Any) -> Any:
    return d


def _ignore(_: Any) -> None:
    return None


def _faces_removed(d: dict[str, Any]) -> int:
    return d["faces_removed"]


def _collection(d: dict[str, Any]) -> Collection:
    return Collection(**d)


def _identity(d: dict[str, Any]) -> Identity:
    return Identity(**d)


def _collection_page(d: dict[str, Any]) -> Page[Collection]:
    return Page([Collection(**c) for c in d["items"]], d["offset"], d["limit"], d["total"])


def _identity_page(d: dict[str, Any]) -> Page[Identity]:
    return Page([Identity(**i) for i in d["items"]], d["offset"], d["limit"], d["total"])


def _matches(d: dict[str, Any]) -> Matches:
    return Matches(
        [match_from_dict(m) for m in d["matches"]], OperatingPoint(**d["operating_point"])
    )


def _face_infos(d: dict[str, Any]) -> list[FaceInfo]:
    return [FaceInfo.from_dict(f) for f in d["faces"]]


def _analyses(d: dict[str, Any]) -> list[Analysis]:
    return [Analysis.from_dict(f) for f in d["faces"]]
