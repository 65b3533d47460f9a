"""Settings of the HTTP API on top of the job settings (same ``FACEID_`` environment prefix).

``FACEID_API_AUTH`` (default true: a server refuses requests without a valid API key),
``FACEID_API_MAX_BODY_BYTES``, ``FACEID_API_MAX_K``, ``FACEID_API_MAX_BATCH``,
``FACEID_API_ALLOW_SERVER_PATHS`` (default false: no request may name a file on the server),
``FACEID_API_PRELOAD`` (load models and indexes at startup, before /readyz says ready),
``FACEID_API_SEARCH_THREADS``.
"""

from __future__ import annotations

from pydantic import Field

from ..config import Settings
from ..jobs.settings import JobSettings

SCOPES = ("query", "enroll", "admin")


class ApiSettings(JobSettings):
    api_auth: bool = True
    # Whole request bodies; one image is also held to max_image_bytes by imaging.
    api_max_body_bytes: int = Field(default=32 * 1024 * 1024, gt=0)
    api_max_k: int = Field(default=100, ge=1)
    # Images in one enroll request (bigger imports go through enroll jobs).
    api_max_batch: int = Field(default=16, ge=1)
    api_allow_server_paths: bool = False
    # The folders server-side paths must lie under (JSON list); "{tenant}" in one stands for the
    # requesting tenant, so each tenant reads only its own tree. None configured: none accepted.
    api_server_path_roots: list[str] = Field(default_factory=list)
    api_preload: bool = True
    # /metrics needs no key: it shows each collection's index size only when this is on (an
    # operator's opt-in for a private scrape), otherwise the total of every loaded index.
    api_metrics_per_collection: bool = False
    # FAISS threads per query. Requests already run in parallel, and OpenMP's fork/join on a
    # busy machine costs more than it saves: measured 8 ms vs 0.01 ms for a 1-face index and
    # 39 vs 3.5 ms at 100k faces with 2 threads vs 1 on a 2-vCPU host. 0: FAISS's default.
    api_search_threads: int = Field(default=1, ge=0)
    # Tenant of requests when auth is off (a request may name another in X-FaceID-Tenant).
    api_default_tenant: str = "default"


def api_settings(settings: Settings | None = None) -> ApiSettings:
    """``settings`` as ApiSettings (the API fields read from the environment)."""
    if isinstance(settings, ApiSettings):
        return settings
    if settings is None:
        return ApiSettings()
    return ApiSettings(**settings.model_dump())
