"""API keys: a random token shown once, stored as its sha256; scopes and a tenant per key."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from ..store import ApiKeyRecord, Repository
from .errors import AuthenticationError, PermissionDeniedError, ValidationError

SCOPES = ("query", "enroll", "admin")
TOKEN_PREFIX = "fid_"
TENANT_HEADER = "X-FaceID-Tenant"


def hash_key(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_api_key(
    repo: Repository, tenant: str, scopes: Iterable[str], name: str | None = None
) -> tuple[str, ApiKeyRecord]:
    """A new key: ``(token, record)``. Only the hash is stored; the token cannot be shown again."""
    wanted = sorted({s.strip() for s in scopes if s.strip()})
    unknown = [s for s in wanted if s not in SCOPES]
    if unknown or not wanted:
        raise ValidationError(
            f"scopes must be a non-empty subset of {', '.join(SCOPES)}; got {wanted}",
            scopes=wanted,
        )
    if not tenant:
        raise ValidationError("tenant must not be empty")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    return token, repo.add_api_key(hash_key(token), tenant=tenant, scopes=wanted, name=name)


@dataclass(frozen=True)
class Principal:
    tenant: str
    scopes: frozenset[str]
    key_id: int | None = None  # None when auth is off

    def allows(self, scope: str) -> bool:
        return "admin" in self.scopes or scope in self.scopes


_bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer <API key>")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="the API key")


async def principal(
    request: Request,
    bearer: HTTPAuthorizationCredentials | None = Security(_bearer),
    header_key: str | None = Security(_header),
) -> Principal:
    # async, and the database only off the event loop: a sync dependency costs every request a
    # hop through the threadpool (the queue a saturated server must not grow).
    runtime = request.app.state.runtime
    settings = runtime.settings
    if not settings.api.auth:
        tenant = request.headers.get(TENANT_HEADER) or settings.api.default_tenant
        return Principal(tenant=tenant, scopes=frozenset(SCOPES))
    token = bearer.credentials if bearer is not None else header_key
    if not token:
        raise AuthenticationError(
            "an API key is required: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'"
        )
    digest = hash_key(token)
    known, record, generation = runtime.keys.get(digest)
    if not known:
        record = await run_in_threadpool(runtime.service.repo.get_api_key, digest)
        runtime.keys.put(digest, record, generation)
    if record is None or not record.active:
        raise AuthenticationError("invalid or revoked API key")
    return Principal(tenant=record.tenant, scopes=frozenset(record.scopes), key_id=record.id)


def require(scope: str) -> Callable[..., Principal]:
    """A dependency: the caller's principal, which must hold ``scope`` (admin holds all)."""

    async def check(who: Principal = Depends(principal)) -> Principal:
        if not who.allows(scope):
            raise PermissionDeniedError(
                f"this API key lacks the {scope!r} scope", scope=scope, scopes=sorted(who.scopes)
            )
        return who

    check.__name__ = f"require_{scope}"
    return check


QueryScope = Depends(require("query"))
EnrollScope = Depends(require("enroll"))
AdminScope = Depends(require("admin"))
