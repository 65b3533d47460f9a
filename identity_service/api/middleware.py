"""Pure ASGI middleware (no per-request task switching): body size cap, timing and metrics."""

from __future__ import annotations

import json
import logging
import time
import uuid
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .metrics import Metrics

log = logging.getLogger("identity_service.api")


def _too_large(limit: int) -> str:
    return f"request body is larger than the limit of {limit} bytes"


class GuardMiddleware:
    """Refuses a declared Content-Length over the limit before reading anything, and stops a
    body that turns out longer (chunked, or lying about its length) as soon as it passes it.
    Also refuses NUL characters in the path or query, which no database column can hold, and
    an encoded '/' (%2F) in the path: no id holds a '/', and decoded it would address another
    resource (``/v1/collections/staff%2Fidentities%2Fabel`` is identity abel of staff)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if "\x00" in scope.get("path", "") or b"%00" in scope.get("query_string", b""):
            await _send_error(send, 400, "bad_request", "NUL characters in the URL")
            return
        if b"%2f" in scope.get("raw_path", b"").split(b"?", 1)[0].lower():
            await _send_error(
                send,
                400,
                "bad_request",
                "an encoded '/' (%2F) in the URL path: no collection, identity or job id "
                "contains '/'",
            )
            return
        declared = _header(scope, b"content-length")
        if declared is not None:
            try:
                length = int(declared)
            except ValueError:
                await _send_error(send, 400, "bad_request", "invalid Content-Length header")
                return
            if length > self.max_bytes:
                await _send_error(send, 413, "payload_too_large", _too_large(self.max_bytes))
                return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise HTTPException(413, _too_large(self.max_bytes))
            return message

        await self.app(scope, limited, send)


class TimingMiddleware:
    """Observes latency by route template and adds ``app;dur=`` (ms in the server, from the
    first byte in to the response headers out) to the ``Server-Timing`` header."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def timed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                ms = (time.perf_counter() - start) * 1000.0
                headers = list(message.get("headers", []))
                timing = [v for k, v in headers if k.lower() == b"server-timing"]
                headers = [(k, v) for k, v in headers if k.lower() != b"server-timing"]
                parts = [*timing, f"app;dur={ms:.2f}".encode()]
                headers.append((b"server-timing", b", ".join(parts)))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, timed_send)
        finally:
            route = scope.get("route")
            label = getattr(route, "path", None) or "unmatched"
            self.metrics.latency.labels(scope["method"], label, str(status)).observe(
                time.perf_counter() - start
            )


class CatchAllMiddleware:
    """An error no handler knows becomes a 500 JSON answer here, logged once with a request id,
    and the connection stays open. Re-raised to the server (as Starlette's outermost handler
    does after answering), it would make the server drop the connection, and a client's next
    request on it would fail with a reset."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            request_id = uuid.uuid4().hex[:12]
            log.exception(
                "unexpected error on %s %s request_id=%s",
                scope.get("method"),
                scope.get("path"),
                request_id,
            )
            if started:  # the answer is half sent: nothing sound can follow it
                raise
            body = json.dumps(
                {
                    "error": {
                        "code": "internal_error",
                        "message": "internal server error (logged)",
                        "details": {"request_id": request_id},
                    }
                }
            ).encode()
            headers: list[Any] = [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"x-request-id", request_id.encode()),
            ]
            await send({"type": "http.response.start", "status": 500, "headers": headers})
            await send({"type": "http.response.body", "body": body})


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


async def _send_error(send: Send, status: int, code: str, message: str) -> None:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    headers: list[Any] = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
