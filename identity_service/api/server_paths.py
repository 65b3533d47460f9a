"""Server-side folders a request may name: only under the configured roots, per tenant.

A path is resolved (symbolic links and '..' included) before it is compared, so no spelling
leaves a root; a path outside every root is refused the same way whether or not it exists.
"""

from __future__ import annotations

from pathlib import Path

from ..config import ApiSettings
from .errors import PathNotPermittedError, ServerPathsDisabledError, ValidationError


def roots_for(settings: ApiSettings, tenant: str) -> list[Path]:
    # A tenant name that is not one plain path segment gets no per-tenant root.
    plain = "/" not in tenant and tenant not in ("", ".", "..")
    return [
        Path(root.replace("{tenant}", tenant)).resolve()
        for root in settings.server_path_roots
        if plain or "{tenant}" not in root
    ]


def permitted_folder(path: str, settings: ApiSettings, tenant: str) -> Path:
    """The folder ``path`` names, if this tenant may enroll from it."""
    if not settings.allow_server_paths:
        raise ServerPathsDisabledError(
            "this server does not accept server-side paths (FACEID_API_ALLOW_SERVER_PATHS)"
        )
    roots = roots_for(settings, tenant)
    if not roots:
        raise ServerPathsDisabledError(
            "server-side paths are allowed but no folder is permitted: set "
            "FACEID_API_SERVER_PATH_ROOTS"
        )
    if not path.strip():
        raise ValidationError("path is empty", field="path")
    candidate = Path(path)
    resolved = (candidate if candidate.is_absolute() else roots[0] / candidate).resolve()
    if not any(resolved.is_relative_to(root) for root in roots):
        raise PathNotPermittedError(
            f"{path} is not under a folder this server permits for tenant {tenant!r}",
            path=path,
        )
    if not resolved.is_dir():
        raise ValidationError(f"not a folder on the server: {path}", path=path)
    return resolved
