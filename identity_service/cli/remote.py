"""``--server URL --api-key KEY``: the CLI verbs run against a ``faceid serve`` through
:class:`~identity_service.client.FaceIDClient` instead of the embedded service."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import typer
from rich.markup import escape

from ..errors import FaceIDError, UnknownCollectionError
from .app import err_console

if TYPE_CHECKING:
    from ..client import FaceIDClient

ServerOpt = typer.Option(
    None,
    "--server",
    envvar="FACEID_SERVER",
    help="run against this faceid server (e.g. http://127.0.0.1:8000) instead of locally",
)
ApiKeyOpt = typer.Option(
    None, "--api-key", envvar="FACEID_API_KEY", help="API key for --server", show_default=False
)
# A CLI call should fail fast on a dead server: few retries, short backoff.
RETRIES = 2
BACKOFF = 0.2


@contextmanager
def remote(server: str, api_key: str | None, timeout: float = 120.0) -> Iterator[FaceIDClient]:
    """A client of ``server``; any client, HTTP or file error inside the block becomes one
    red line on stderr and exit code 1 (no traceback)."""
    import httpx

    from ..client import FaceIDClient as Client

    try:
        with Client(
            server, api_key=api_key, timeout=timeout, retries=RETRIES, backoff=BACKOFF
        ) as client:
            yield client
    except FaceIDError as exc:
        _fail(f"[{exc.code}] {exc.message}", server)
    except httpx.HTTPError as exc:
        _fail(f"[{type(exc).__name__}] {exc or 'no answer'}", server)
    except (OSError, TimeoutError) as exc:
        _fail(f"[{type(exc).__name__}] {exc}", server)


def _fail(message: str, server: str) -> None:
    err_console.print(f"[red]error[/red] {escape(message)} (server {escape(server)})")
    raise typer.Exit(1)


def local_only(**options: object) -> None:
    """Refuse options that only the local pipeline honours when ``--server`` is given."""
    given = [name for name, value in options.items() if value not in (None, False)]
    if given:
        flags = ", ".join(f"--{name.replace('_', '-')}" for name in given)
        raise typer.BadParameter(f"{flags} cannot be used with --server")


def ensure_collection(client: FaceIDClient, name: str, model: str | None) -> None:
    """Create ``name`` on the server unless it exists (like the local enroll does)."""
    try:
        client.collection(name)
    except UnknownCollectionError:
        client.create_collection(name, model)
