"""The HTTP API (FastAPI). ``create_app()`` builds it; ``faceid serve`` runs it with uvicorn.

Importing this package does not import FastAPI: the client shares :mod:`.errors`.
"""

from __future__ import annotations

from typing import Any

__all__ = ["create_app", "openapi_schema"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import app

        return getattr(app, name)
    raise AttributeError(name)
