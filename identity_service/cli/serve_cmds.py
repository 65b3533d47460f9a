"""Server verbs: ``serve`` (the HTTP API under uvicorn), ``keys create|list|revoke`` and
``openapi`` (export the API document)."""

from __future__ import annotations

import os
from pathlib import Path

import typer
from rich.table import Table

from .app import app, console, print_json

JsonOpt = typer.Option(False, "--json", help="print JSON")

keys_app = typer.Typer(
    help="API keys (stored hashed; a token is shown once).", no_args_is_help=True
)
app.add_typer(keys_app, name="keys")


@app.command("serve")
def serve_command(
    host: str = typer.Option("127.0.0.1", help="address to listen on"),
    port: int = typer.Option(8000, help="port to listen on"),
    workers: int = typer.Option(1, min=1, help="server processes (each loads the models once)"),
    auth: bool = typer.Option(
        True, "--auth/--no-auth", help="require API keys (--no-auth: trusted networks only)"
    ),
    log_level: str = typer.Option("info", help="uvicorn log level"),
) -> None:
    """Serve the HTTP API (docs at /docs, OpenAPI at /openapi.json)."""
    import uvicorn

    # Read by every worker process's settings (Settings.api, FACEID_API_ prefix).
    if not auth:
        os.environ["FACEID_API_AUTH"] = "false"
    uvicorn.run(
        "identity_service.api.app:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        # Requests beyond this many in flight get a 503 (the client retries those).
        limit_concurrency=256,
        timeout_keep_alive=30,
    )


@app.command("openapi")
def openapi_command(
    output: Path = typer.Option(None, "-o", "--output", help="write to this file, not stdout"),
) -> None:
    """Print or export the OpenAPI document of the HTTP API."""
    from ..api.app import export_openapi, openapi_text

    if output is None:
        console.out(openapi_text(), end="")
        return
    export_openapi(output)
    console.print(f"wrote {output}")


def _service():  # type: ignore[no-untyped-def]
    from ..config import Settings
    from ..service import FaceService

    # Fresh settings (not the cached ones): the environment is the truth for a CLI call.
    return FaceService.embedded(Settings())  # loads no model: keys only touch the database


@keys_app.command("create")
def keys_create(
    tenant: str = typer.Option("default", "--tenant", "-t", help="tenant the key belongs to"),
    scopes: str = typer.Option("query", help="comma-separated: query, enroll, admin"),
    name: str = typer.Option(None, help="a label for the key"),
    json_out: bool = JsonOpt,
) -> None:
    """Create an API key; its token is printed once and cannot be shown again."""
    from ..api.auth import create_api_key

    with _service() as service:
        token, record = create_api_key(service.repo, tenant, scopes.split(","), name)
    if json_out:
        print_json({"id": record.id, "token": token, "tenant": tenant, "scopes": record.scopes})
        return
    console.print(f"key {record.id} for tenant {tenant!r}, scopes {','.join(record.scopes)}:")
    console.out(token)
    console.print("[dim]store it now: only its hash is kept[/dim]")


@keys_app.command("list")
def keys_list(
    tenant: str = typer.Option(None, "--tenant", "-t", help="only this tenant's keys"),
    json_out: bool = JsonOpt,
) -> None:
    """List API keys (never their tokens)."""
    with _service() as service:
        keys = service.repo.list_api_keys(tenant)
    rows = [
        {
            "id": k.id,
            "tenant": k.tenant,
            "scopes": k.scopes,
            "name": k.name,
            "created": k.created.isoformat(),
            "revoked": k.revoked.isoformat() if k.revoked else None,
        }
        for k in keys
    ]
    if json_out:
        print_json(rows)
        return
    table = Table("id", "tenant", "scopes", "name", "created", "revoked")
    for r in rows:
        table.add_row(
            str(r["id"]),
            str(r["tenant"]),
            ",".join(r["scopes"]),  # type: ignore[arg-type]
            str(r["name"] or ""),
            str(r["created"])[:19],
            str(r["revoked"] or "")[:19],
        )
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(key_id: int = typer.Argument(..., help="the key's id (see keys list)")) -> None:
    """Revoke an API key at once."""
    with _service() as service:
        record = service.repo.revoke_api_key(key_id)
    console.print(f"key {record.id} revoked")
