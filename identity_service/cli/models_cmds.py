"""``faceid models``: which models exist, where each file was found, and their licences; then
the installed embedding adapters (``faceid learn install``)."""

from __future__ import annotations

import dataclasses

import typer
from rich.table import Table

from ..config import Settings, get_settings
from ..models.adapters import InstalledAdapter
from .app import app, console, print_json


@app.command("models")
def models_command(
    action: str = typer.Argument(
        None, help="'verify': check every file in force against its pin or its provenance"
    ),
    json_out: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """List models, where each file was found (or not), their licences, and which attribute
    set is in force; `faceid models verify` checks the files."""
    from ..service.inventory import model_inventory

    settings = get_settings()
    if action is not None:
        if action != "verify":
            raise typer.BadParameter(f"unknown action {action!r}; the one action is verify")
        verify_models(settings, json_out)
        return
    inventory = model_inventory(settings)
    if json_out:
        print_json(inventory.rows + inventory.adapter_rows)
        return
    folders = (
        f"folder: {settings.resolved_model_dir}; cache: {settings.model_cache_dir}; "
        f"attribute models in force: {settings.models.attribute_models}"
    )
    table = Table(title=f"models ({folders})")
    for col in ("model", "kind", "file", "where", "licence"):
        table.add_column(col, overflow="fold")
    for r in inventory.rows:
        where = r["found"] or "[red]missing[/red]"
        licence = str(r["licence"])
        if r["training_data"]:
            licence += f"; trained on {r['training_data']}"
        if r["input"]:
            licence += f"; input: {r['input']}"
        table.add_row(r["model"], r["kind"], r["file"], where, licence)
    console.print(table)
    if inventory.adapters:
        console.print(_adapter_table(inventory.adapters, settings))


def _adapter_table(adapters: list[InstalledAdapter], settings: Settings) -> Table:
    table = Table(title=f"installed adapters ({settings.resolved_adapter_dir})")
    for col in ("model", "base", "dim", "threshold", "sha256", "file"):
        table.add_column(col, overflow="fold")
    for a in adapters:
        onnx = a.onnx_path(settings)
        threshold = "none" if a.threshold is None else f"{a.threshold:.4f}"
        where = str(onnx) if onnx.is_file() else f"[red]missing[/red] {onnx}"
        table.add_row(a.name, a.base, str(a.out_dim), threshold, a.sha256, where)
    return table


def verify_models(settings: Settings, json_out: bool) -> None:
    """Every pinned file that is present, hashed against its pin; with the trained attribute
    set in force, each trained file's recorded provenance. Exits 1 if any check fails."""
    from ..service.inventory import verify_model_files

    checks = verify_model_files(settings)
    if json_out:
        print_json([dataclasses.asdict(c) for c in checks])
    else:
        table = Table(title="model files in force")
        for col in ("file", "check", "result"):
            table.add_column(col, overflow="fold")
        for c in checks:
            table.add_row(c.file, c.check, "ok" if c.ok else "[red]FAILED[/red]")
        console.print(table)
    if not all(c.ok for c in checks):
        raise typer.Exit(1)
