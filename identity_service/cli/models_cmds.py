"""``faceid models``: which models exist, where each file was found, and their licences."""

from __future__ import annotations

import typer
from rich.table import Table

from ..config import get_settings
from ..models import MODELS, locate
from .app import app, console, print_json


@app.command("models")
def models_command(json_out: bool = typer.Option(False, "--json", help="print JSON")) -> None:
    """List models, where each file was found (or not), and their licences."""
    settings = get_settings()
    rows = []
    for spec in MODELS.values():
        for file in spec.files:
            found, looked = locate(file, settings)
            rows.append(
                {
                    "model": spec.tag,
                    "kind": spec.kind,
                    "file": file.filename,
                    "found": str(found) if found else None,
                    "looked": looked,
                    "sha256": file.sha256,
                    "url": file.url,
                    "licence": spec.licence,
                    "description": spec.description,
                }
            )
    if json_out:
        print_json(rows)
        return
    table = Table(title=f"models (cache: {settings.resolved_model_dir})")
    for col in ("model", "kind", "file", "where", "licence"):
        table.add_column(col, overflow="fold")
    for r in rows:
        where = r["found"] or "[red]missing[/red]"
        table.add_row(r["model"], r["kind"], r["file"], where, r["licence"])
    console.print(table)
