"""Every error leaves as ``{"error": {"code", "message", "details"?}}`` with a stable code."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import FaceIDError, ModelError, OverloadedError
from .errors import BY_STATUS, InternalError, ServiceUnavailableError, ValidationError

log = logging.getLogger("identity_service.api")


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": _text(message)}
    if details:
        error["details"] = _jsonable(details)
    return {"error": error}


def _text(value: str) -> str:
    """``value``, with any lone surrogate (from a JSON escape such as "\\udfff" in the request)
    written as its escape: the answer is UTF-8, which cannot hold one."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    return value


def _jsonable(value: Any) -> Any:
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, (int, float, bool)) or value is None:
        return value
    if isinstance(value, dict):
        return {_text(str(k)): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_jsonable(v) for v in value]
    return _text(str(value)[:200])


def faceid_response(exc: FaceIDError) -> JSONResponse:
    status = exc.http_status
    # A missing or damaged model file does not come back by retrying: no Retry-After for it.
    retry = status == 503 and not isinstance(exc, ModelError)
    headers = {"Retry-After": "1"} if retry else None
    # Shedding is the server working as meant: counted in /metrics, not logged per request.
    if status >= 500 and not isinstance(exc, OverloadedError):
        log.error("%s: %s", exc.code, exc.message)
    return JSONResponse(
        error_body(exc.code, exc.message, _jsonable(exc.details)), status, headers=headers
    )


async def _faceid(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, FaceIDError)
    return faceid_response(exc)


async def _validation(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    # Only location, message and type: the offending input may be binary or huge.
    problems = [
        {
            "loc": [_text(str(p)) for p in e.get("loc", ())],
            "msg": _text(str(e.get("msg", ""))),
            "type": e.get("type"),
        }
        for e in exc.errors()
    ]
    first = problems[0] if problems else {"loc": [], "msg": "invalid request"}
    message = f"{'.'.join(first['loc'])}: {first['msg']}" if first["loc"] else first["msg"]
    return JSONResponse(
        error_body(ValidationError.code, message, {"errors": problems}), ValidationError.http_status
    )


async def _http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400 and isinstance(exc.__cause__, RecursionError):
        # FastAPI could not parse a JSON body: answered as the image routes answer it.
        return await _too_deep(request, exc.__cause__)
    if exc.status_code == 400 and isinstance(exc.__cause__, ValueError):
        # Not UTF-8, or an integer literal longer than Python converts (4300 digits).
        return JSONResponse(
            error_body(ValidationError.code, f"body is not valid JSON: {exc.__cause__}"),
            ValidationError.http_status,
        )
    cls = BY_STATUS.get(exc.status_code)
    code = cls.code if cls is not None else f"http_{exc.status_code}"
    message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    if exc.status_code == 404 and message == "Not Found":
        message = "no such route"
    return JSONResponse(
        error_body(code, message), exc.status_code, headers=getattr(exc, "headers", None)
    )


def dependency_errors() -> tuple[type[BaseException], ...]:
    """Errors that mean the database or the broker cannot be reached right now: retrying
    later can succeed, so they answer 503 with Retry-After."""
    import sqlalchemy.exc as sa

    errors: list[type[BaseException]] = [sa.OperationalError, sa.InterfaceError, sa.TimeoutError]
    try:
        import kombu.exceptions
        import redis.exceptions

        errors += [kombu.exceptions.OperationalError, redis.exceptions.ConnectionError]
    except ImportError:  # the broker's client libraries come with celery[redis]
        pass
    return tuple(errors)


async def _dependency_down(request: Request, exc: Exception) -> JSONResponse:
    request_id = uuid.uuid4().hex[:12]
    # One line per failed request, no traceback: an outage must not flood the log.
    log.warning(
        "dependency unavailable: %s %s request_id=%s %s",
        request.method,
        request.url.path,
        request_id,
        type(exc).__name__,
    )
    return JSONResponse(
        error_body(
            ServiceUnavailableError.code,
            "a dependency (database or broker) is unavailable; retry shortly",
            {"request_id": request_id},
        ),
        ServiceUnavailableError.http_status,
        headers={"Retry-After": "2", "X-Request-Id": request_id},
    )


async def _too_deep(_: Request, exc: Exception) -> JSONResponse:
    # The JSON parser recursed past Python's limit: a body nested deeper than any request needs.
    return JSONResponse(
        error_body(ValidationError.code, "request body is nested too deeply"),
        ValidationError.http_status,
    )


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return JSONResponse(
        error_body(InternalError.code, "internal server error (logged)"), InternalError.http_status
    )


def install(app: FastAPI) -> None:
    app.add_exception_handler(FaceIDError, _faceid)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(RecursionError, _too_deep)
    for error in dependency_errors():
        app.add_exception_handler(error, _dependency_down)
    app.add_exception_handler(Exception, _unexpected)
