"""``faceid models``: which models exist, where each file was found, and their licences; then
the installed embedding adapters (``faceid learn install``)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from ..config import Settings, get_settings
from ..errors import FaceIDError
from ..models import MODELS, ModelSpec, locate
from ..models.adapters import InstalledAdapter, list_installed
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
    from ..attributes import describe_heads

    settings = get_settings()
    if action is not None:
        if action != "verify":
            raise typer.BadParameter(f"unknown action {action!r}; the one action is verify")
        verify_models(settings, json_out)
        return
    heads = {f"faceid-attr-{h.action}": h for h in describe_heads(settings)}
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
                    "archive": (
                        {"url": file.archive.url, "sha256": file.archive.sha256}
                        if file.archive
                        else None
                    ),
                    "licence": spec.licence,
                    "description": spec.description,
                    "input": input_contract(spec),
                    "training_data": spec.extra.get("training_data"),
                }
            )
            if spec.name in heads:  # trained here: its data, seed and held-out metrics
                rows[-1]["trained"] = heads[spec.name].to_dict()
            elif found and spec.name == "faceid-attr-tuned-features":
                rows[-1]["trained"] = _features_provenance(found)
    adapters = list_installed(settings)
    if json_out:
        print_json(rows + [_adapter_row(a, settings) for a in adapters])
        return
    folders = (
        f"folder: {settings.resolved_model_dir}; cache: {settings.model_cache_dir}; "
        f"attribute models in force: {settings.attribute_models}"
    )
    table = Table(title=f"models ({folders})")
    for col in ("model", "kind", "file", "where", "licence"):
        table.add_column(col, overflow="fold")
    for r in rows:
        where = r["found"] or "[red]missing[/red]"
        licence = str(r["licence"])
        if r["training_data"]:
            licence += f"; trained on {r['training_data']}"
        if r["input"]:
            licence += f"; input: {r['input']}"
        table.add_row(r["model"], r["kind"], r["file"], where, licence)
    console.print(table)
    if adapters:
        console.print(_adapter_table(adapters, settings))


def _features_provenance(path: Path) -> dict[str, object]:
    from ..attributes.tuned_features import TunedFeatures
    from ..errors import ModelError

    try:
        return {"file": str(path), "provenance": TunedFeatures.load(path).meta}
    except ModelError as exc:
        return {"file": str(path), "error": str(exc)}


def _adapter_row(adapter: InstalledAdapter, settings: Settings) -> dict:
    onnx = adapter.onnx_path(settings)
    return {
        "model": adapter.name,
        "kind": "adapter",
        "base": adapter.base,
        "dim": adapter.out_dim,
        "threshold": adapter.threshold,
        "threshold_source": adapter.threshold_source,
        "file": onnx.name,
        "found": str(onnx) if onnx.is_file() else None,
        "sha256": adapter.sha256,
        "source": adapter.source,
        "training_data": adapter.training_data,
    }


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


def input_contract(spec: ModelSpec) -> str | None:
    """An embedder's input contract in one line (None for other kinds)."""
    if spec.kind != "embedder" or spec.input_size is None:
        return None
    height, width = spec.input_size
    if "fuses" in spec.extra:
        return f"each part's own ({' + '.join(map(str, spec.extra['fuses']))})"  # type: ignore[arg-type]
    face = spec.face_input
    if spec.input_size == (150, 150):
        return "dlib's 150x150 face chip from its 5-point shape"
    return (
        f"{width}x{height} ArcFace 5-point template (least squares, all 5 landmarks of "
        f"{spec.detector or 'the detector'}), {face.layout.upper()} RGB, "
        f"(x - {face.mean:g}) / {face.std:g}"
        + (", face and mirror averaged" if face.mirror else "")
    )


def verify_models(settings: Settings, json_out: bool) -> None:
    """Every pinned file that is present, hashed against its pin; with the trained attribute
    set in force, each trained file's recorded provenance. Exits 1 if any check fails."""
    from ..attributes.heads import HEAD_FILES, heads_dir, read_stamp
    from ..attributes.runtime import ort_session
    from ..attributes.tuned_features import FEATURES_FILE
    from ..models.download import sha256_of

    rows = []
    seen: set[Path] = set()
    for spec in MODELS.values():
        for file in spec.files:
            found, _ = locate(file, settings)
            if found is None or file.sha256 is None or found in seen:
                continue
            seen.add(found)
            actual = sha256_of(found)
            rows.append({"file": str(found), "check": "sha256 pin", "ok": actual == file.sha256})
    if settings.attribute_models == "trained":
        for filename in [*HEAD_FILES.values(), FEATURES_FILE]:
            path = heads_dir(settings) / filename
            if not path.is_file():
                continue
            try:
                _, _, meta = read_stamp(ort_session(path, "cpu", path.name), path)
                ok = bool(meta.get("trained_by")) and "seed" in meta
            except FaceIDError:
                ok = False
            rows.append({"file": str(path), "check": "recorded provenance", "ok": ok})
    if json_out:
        print_json(rows)
    else:
        table = Table(title="model files in force")
        for col in ("file", "check", "result"):
            table.add_column(col, overflow="fold")
        for r in rows:
            table.add_row(r["file"], r["check"], "ok" if r["ok"] else "[red]FAILED[/red]")
        console.print(table)
    if not all(r["ok"] for r in rows):
        raise typer.Exit(1)
