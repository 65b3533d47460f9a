"""FaceIDClient: the typed, synchronous HTTP client of the faceid API (httpx)."""

from __future__ import annotations

import io
import json
import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image

from ..api.errors import error_classes
from ..errors import FaceIDError
from .models import (
    Analysis,
    Collection,
    EnrollResult,
    FaceInfo,
    Identity,
    Job,
    Match,
    Page,
    Verification,
    enroll_result_from_dict,
    match_from_dict,
)

ClientImage = str | Path | bytes | bytearray | np.ndarray | Image.Image


class ApiError(FaceIDError):
    """An error code this client does not know (a newer server, or a proxy's answer)."""

    code = "api_error"


def raise_for_error(response: httpx.Response) -> None:
    """Raise the typed error an error response carries (the class of its code)."""
    if response.status_code < 400:
        return
    try:
        error = response.json()["error"]
        code, message = str(error["code"]), str(error["message"])
        details = dict(error.get("details") or {})
    except (ValueError, KeyError, TypeError):
        code, message, details = f"http_{response.status_code}", response.text[:500], {}
    cls = error_classes().get(code)  # at raise time: every error class is imported by now
    try:
        exc = cls(message, **details) if cls is not None else ApiError(message, **details)
    except TypeError:  # a class with its own constructor
        exc = ApiError(message, **details)
    if cls is None or not isinstance(exc, cls):
        exc.code = code
    exc.http_status = response.status_code
    raise exc


def image_part(image: ClientImage, name: str = "image") -> tuple[str, bytes, str]:
    """``(filename, bytes, content type)`` of an image: files and bytes go as they are;
    arrays (RGB, like the service takes them) and PIL images are encoded as PNG."""
    if isinstance(image, (str, Path)):
        path = Path(image)
        return (path.name, path.read_bytes(), "application/octet-stream")
    if isinstance(image, (bytes, bytearray)):
        return (name, bytes(image), "application/octet-stream")
    if isinstance(image, np.ndarray):
        from ..imaging import load_image

        image = Image.fromarray(load_image(image, max_pixels=2**31))
    if isinstance(image, Image.Image):
        buf = io.BytesIO()
        (image if image.mode in ("RGB", "L", "RGBA") else image.convert("RGB")).save(buf, "PNG")
        return (f"{name}.png", buf.getvalue(), "image/png")
    raise TypeError(f"unsupported image type: {type(image).__name__}")


class FaceIDClient:
    """Talks to a ``faceid serve``. Retries 503s and refused connections with exponential
    backoff; every error response raises the typed error of its code."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        timeout: float = 60.0,
        *,
        retries: int = 4,
        backoff: float = 0.25,
        tenant: str | None = None,
        transport: httpx.BaseTransport | None = None,
        http_client: httpx.Client | None = None,
    ) -> None:
        """``http_client``: an httpx.Client to send through instead (tests pass FastAPI's
        TestClient); ``base_url`` is then ignored."""
        headers = {"User-Agent": "faceid-client"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        if tenant:
            headers["X-FaceID-Tenant"] = tenant  # only heeded by servers without auth
        if http_client is not None:
            http_client.headers.update(headers)
            self._http = http_client
        else:
            self._http = httpx.Client(
                base_url=base_url.rstrip("/"),
                headers=headers,
                timeout=timeout,
                transport=transport,
            )
        self.retries = retries
        self.backoff = backoff

    # -- plumbing ---------------------------------------------------------------------------
    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            try:
                response = self._http.request(method, path, **kwargs)
            except (httpx.ConnectError, httpx.ConnectTimeout):
                if last:
                    raise
                self._sleep(attempt, None)
                continue
            if response.status_code == 503 and not last:
                self._sleep(attempt, response.headers.get("Retry-After"))
                continue
            raise_for_error(response)
            return response
        raise AssertionError("unreachable")

    def _sleep(self, attempt: int, retry_after: str | None) -> None:
        delay = self.backoff * 2**attempt * (1 + random.random() / 2)
        if retry_after and retry_after.isdigit():
            delay = max(delay, min(float(retry_after), 30.0))
        time.sleep(delay)

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.request(method, path, **kwargs).json()

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> FaceIDClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- health -----------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        return self._json("GET", "/healthz")

    def ready(self) -> dict[str, Any]:
        """The readiness checks; raises ServiceUnavailableError when not ready."""
        return self._json("GET", "/readyz")

    # -- collections and identities ---------------------------------------------------------
    def create_collection(
        self, name: str, model: str | None = None, threshold: float | None = None
    ) -> Collection:
        body = {"name": name, "model": model, "threshold": threshold}
        return Collection(**self._json("POST", "/v1/collections", json=body))

    def collection(self, name: str) -> Collection:
        return Collection(**self._json("GET", f"/v1/collections/{_seg(name)}"))

    def collections(self, offset: int = 0, limit: int = 50) -> Page[Collection]:
        d = self._json("GET", "/v1/collections", params={"offset": offset, "limit": limit})
        return Page([Collection(**c) for c in d["items"]], d["offset"], d["limit"], d["total"])

    def delete_collection(self, name: str) -> int:
        return self._json("DELETE", f"/v1/collections/{_seg(name)}")["faces_removed"]

    def identities(self, collection: str, offset: int = 0, limit: int = 50) -> Page[Identity]:
        d = self._json(
            "GET",
            f"/v1/collections/{_seg(collection)}/identities",
            params={"offset": offset, "limit": limit},
        )
        return Page([Identity(**i) for i in d["items"]], d["offset"], d["limit"], d["total"])

    def identity(self, collection: str, external_id: str) -> Identity:
        path = f"/v1/collections/{_seg(collection)}/identities/{_seg(external_id)}"
        return Identity(**self._json("GET", path))

    def update_identity(
        self,
        collection: str,
        external_id: str,
        *,
        name: str | None = None,
        metadata: dict[str, Any] | None = None,
        merge: bool = True,
    ) -> Identity:
        path = f"/v1/collections/{_seg(collection)}/identities/{_seg(external_id)}"
        body = {"name": name, "metadata": metadata, "merge": merge}
        return Identity(**self._json("PATCH", path, json=body))

    def delete_identity(self, collection: str, external_id: str) -> int:
        """Remove a person; returns how many faces went."""
        path = f"/v1/collections/{_seg(collection)}/identities/{_seg(external_id)}"
        return self._json("DELETE", path)["faces_removed"]

    def delete_face(self, collection: str, face_id: int) -> None:
        self._json("DELETE", f"/v1/collections/{_seg(collection)}/faces/{int(face_id)}")

    # -- enrollment and jobs ----------------------------------------------------------------
    def enroll(
        self,
        collection: str,
        external_id: str,
        images: ClientImage | Sequence[ClientImage],
        name: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> EnrollResult:
        if not isinstance(images, (list, tuple)):
            images = [images]  # type: ignore[list-item]
        files = [("images", image_part(img, f"image{i}")) for i, img in enumerate(images)]
        data: dict[str, str] = {"external_id": external_id}
        if name is not None:
            data["name"] = name
        if metadata is not None:
            data["metadata"] = json.dumps(metadata)
        path = f"/v1/collections/{_seg(collection)}/enroll"
        return enroll_result_from_dict(self._json("POST", path, data=data, files=files))

    def enroll_job(
        self, collection: str, path: str, batch_size: int = 32, limit: int | None = None
    ) -> Job:
        """Enroll a folder on the server (needs FACEID_API_ALLOW_SERVER_PATHS there)."""
        body = {"path": str(path), "batch_size": batch_size, "limit": limit}
        url = f"/v1/collections/{_seg(collection)}/enroll-jobs"
        return Job.from_dict(self._json("POST", url, json=body), self)

    def job(self, job_id: str) -> Job:
        return Job.from_dict(self._json("GET", f"/v1/jobs/{_seg(job_id)}"), self)

    def jobs(self, limit: int = 50, status: str | None = None) -> list[Job]:
        params: dict[str, Any] = {"limit": limit}
        if status:
            params["status"] = status
        return [Job.from_dict(j, self) for j in self._json("GET", "/v1/jobs", params=params)]

    def reindex(self, collection: str) -> Job:
        return Job.from_dict(
            self._json("POST", f"/v1/collections/{_seg(collection)}/reindex"), self
        )

    # -- queries ----------------------------------------------------------------------------
    def find(
        self,
        collection: str,
        image: ClientImage,
        k: int = 5,
        *,
        aggregate: str = "max",
        threshold: float | None = None,
    ) -> list[Match]:
        """Ranked candidate identities; ``matches[0].accepted`` False means unknown."""
        data: dict[str, str] = {"k": str(k), "aggregate": aggregate}
        if threshold is not None:
            data["threshold"] = str(threshold)
        path = f"/v1/collections/{_seg(collection)}/find"
        d = self._json("POST", path, data=data, files={"image": image_part(image)})
        return [match_from_dict(m) for m in d["matches"]]

    def verify(
        self,
        image1: ClientImage,
        image2: ClientImage | None = None,
        *,
        collection: str | None = None,
        identity: str | None = None,
    ) -> Verification:
        """Two images, or ``image1`` against ``identity`` of ``collection``."""
        files = {"image1": image_part(image1, "image1")}
        if image2 is not None:
            files["image2"] = image_part(image2, "image2")
        data = {k: v for k, v in (("collection", collection), ("identity", identity)) if v}
        return Verification.from_dict(self._json("POST", "/v1/verify", data=data, files=files))

    def represent(
        self, image: ClientImage, max_faces: int | None = None, collection: str | None = None
    ) -> list[FaceInfo]:
        data: dict[str, str] = {}
        if max_faces is not None:
            data["max_faces"] = str(max_faces)
        if collection is not None:
            data["collection"] = collection
        d = self._json("POST", "/v1/represent", data=data, files={"image": image_part(image)})
        return [FaceInfo.from_dict(f) for f in d["faces"]]

    def analyze(
        self,
        image: ClientImage,
        actions: tuple[str, ...] = ("age", "gender", "emotion", "race"),
        max_faces: int | None = None,
    ) -> list[Analysis]:
        """Age, gender, emotion and race of every face, centre-most first."""
        data = {"actions": ",".join(actions)}
        if max_faces is not None:
            data["max_faces"] = str(max_faces)
        d = self._json("POST", "/v1/analyze", data=data, files={"image": image_part(image)})
        return [Analysis.from_dict(f) for f in d["faces"]]


def _seg(value: str) -> str:
    """One URL path segment (ids may hold '/', '?', '#')."""
    from urllib.parse import quote

    return quote(str(value), safe="")
