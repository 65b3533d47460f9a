"""FaceIDClient and AsyncFaceIDClient: the typed HTTP clients of the faceid API (httpx).

Both run the same :class:`~identity_service.client.endpoints.Endpoints`; only sending,
retrying and sleeping differ."""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any, TypeVar

import httpx

from ..api.errors import error_classes
from ..errors import FaceIDError
from .calls import AsyncExecutor, Call, ClientImage, SyncExecutor, image_part
from .endpoints import Endpoints

T = TypeVar("T")
RETRIED_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout)
Outcome = httpx.Response | httpx.TransportError


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


def _headers(api_key: str | None, tenant: str | None) -> dict[str, str]:
    headers = {"User-Agent": "faceid-client"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    if tenant:
        headers["X-FaceID-Tenant"] = tenant  # only heeded by servers without auth
    return headers


def _settle(outcome: Outcome) -> httpx.Response:
    """The response of the last attempt, or the error it raises."""
    if isinstance(outcome, Exception):
        raise outcome
    raise_for_error(outcome)
    return outcome


class _Retrying:
    """Retries 503s and refused connections with exponential backoff."""

    retries: int
    backoff: float
    _http: httpx.Client | httpx.AsyncClient

    def _configure(
        self, api_key: str | None, tenant: str | None, retries: int, backoff: float
    ) -> None:
        self._http.headers.update(_headers(api_key, tenant))
        self.retries = retries
        self.backoff = backoff

    def _retry_delay(self, attempt: int, outcome: Outcome) -> float | None:
        """Seconds to wait before the next attempt, or None to stop at this one."""
        if attempt >= self.retries:
            return None
        if isinstance(outcome, httpx.Response):
            if outcome.status_code != 503:
                return None
            retry_after = outcome.headers.get("Retry-After")
        else:
            retry_after = None
        spread = 1 + random.random() / 2
        delay = self.backoff * 2**attempt * spread
        if retry_after and retry_after.isdigit():
            # At least what the server asked, spread by up to half again: clients shed together
            # would otherwise all come back in the same instant and be shed together again.
            delay = max(delay, min(float(retry_after), 30.0) * spread)
        return delay


class FaceIDClient(Endpoints, _Retrying, SyncExecutor):
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
        self._http = http_client or httpx.Client(
            base_url=base_url.rstrip("/"), timeout=timeout, transport=transport
        )
        self._configure(api_key, tenant, retries, backoff)

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        attempt = 0
        while True:
            try:
                outcome: Outcome = self._http.request(method, path, **kwargs)
            except RETRIED_ERRORS as exc:
                outcome = exc
            delay = self._retry_delay(attempt, outcome)
            if delay is None:
                return _settle(outcome)
            time.sleep(delay)
            attempt += 1

    def _execute(self, call: Call[T]) -> T:
        response = self.request(call.method, call.path, **call.request_kwargs())
        return call.parse(response.json())

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> FaceIDClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncFaceIDClient(Endpoints, _Retrying, AsyncExecutor):
    """:class:`FaceIDClient` over ``httpx.AsyncClient``: the same methods, awaited."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        timeout: float = 60.0,
        *,
        retries: int = 4,
        backoff: float = 0.25,
        tenant: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        """``transport``: e.g. ``httpx.ASGITransport(app)`` to call an app in-process."""
        self._http = http_client or httpx.AsyncClient(
            base_url=base_url.rstrip("/"), timeout=timeout, transport=transport
        )
        self._configure(api_key, tenant, retries, backoff)

    async def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        attempt = 0
        while True:
            try:
                outcome: Outcome = await self._http.request(method, path, **kwargs)
            except RETRIED_ERRORS as exc:
                outcome = exc
            delay = self._retry_delay(attempt, outcome)
            if delay is None:
                return _settle(outcome)
            await asyncio.sleep(delay)
            attempt += 1

    async def _execute(self, call: Call[T]) -> T:
        response = await self.request(call.method, call.path, **call.request_kwargs())
        return call.parse(response.json())

    async def close(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncFaceIDClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


__all__ = [
    "ApiError",
    "AsyncFaceIDClient",
    "ClientImage",
    "FaceIDClient",
    "image_part",
    "raise_for_error",
]
