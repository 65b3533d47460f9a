"""Errors that only the HTTP doors raise, and the code -> class table the client maps back.

No FastAPI import here: the client uses this module too.
"""

from __future__ import annotations

from .. import errors as core
from ..errors import FaceIDError


class AuthenticationError(FaceIDError):
    code = "unauthorized"
    http_status = 401


class PermissionDeniedError(FaceIDError):
    code = "forbidden"
    http_status = 403


class PayloadTooLargeError(FaceIDError):
    code = "payload_too_large"
    http_status = 413


class ValidationError(FaceIDError):
    code = "validation_error"
    http_status = 422


class LimitExceededError(FaceIDError):
    code = "limit_exceeded"
    http_status = 422


class BadRequestError(FaceIDError):
    code = "bad_request"
    http_status = 400


class RouteNotFoundError(core.NotFoundError):
    code = "route_not_found"


class MethodNotAllowedError(FaceIDError):
    code = "method_not_allowed"
    http_status = 405


class UnsupportedMediaTypeError(FaceIDError):
    code = "unsupported_media_type"
    http_status = 415


class ServiceUnavailableError(FaceIDError):
    code = "unavailable"
    http_status = 503


class InternalError(FaceIDError):
    code = "internal_error"
    http_status = 500


# Status codes Starlette/FastAPI raise themselves, as our typed errors.
BY_STATUS: dict[int, type[FaceIDError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: RouteNotFoundError,
    405: MethodNotAllowedError,
    413: PayloadTooLargeError,
    415: UnsupportedMediaTypeError,
    422: ValidationError,
    503: ServiceUnavailableError,
}


class ServerPathsDisabledError(PermissionDeniedError):
    code = "server_paths_disabled"


class PathNotPermittedError(PermissionDeniedError):
    code = "path_not_permitted"


def error_classes() -> dict[str, type[FaceIDError]]:
    """Every error code the API can answer with, mapped to its class."""
    out: dict[str, type[FaceIDError]] = {}
    todo: list[type[FaceIDError]] = [FaceIDError]
    while todo:
        cls = todo.pop()
        out.setdefault(cls.code, cls)
        todo.extend(cls.__subclasses__())
    return out
