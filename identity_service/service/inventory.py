"""``faceid models`` as calls: every model of the registry with where each file was found and
what was trained here (:func:`model_inventory`), the installed embedding adapters, and the check
of the files in force against their pins or recorded provenance (:func:`verify_model_files`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..attributes import describe_heads
from ..attributes.heads import HEAD_FILES, heads_dir, read_stamp
from ..attributes.runtime import ort_session
from ..attributes.tuned_features import FEATURES_FILE, TunedFeatures
from ..config import Settings
from ..errors import FaceIDError, ModelError
from ..models import MODELS, ModelFile, ModelSpec, locate
from ..models.adapters import InstalledAdapter, list_installed
from ..models.download import sha256_of


@dataclass(frozen=True)
class ModelInventory:
    """One row per model file (as ``faceid models --json`` prints it) and the installed
    adapters."""

    rows: list[dict[str, object]]
    adapters: list[InstalledAdapter]
    adapter_rows: list[dict[str, object]]


def model_inventory(settings: Settings) -> ModelInventory:
    """Every file of every registered model: where it was found (or where it was looked for),
    its pin, licence and input contract, and the provenance of what was trained here."""
    heads = {f"faceid-attr-{h.action}": h for h in describe_heads(settings)}
    rows = []
    for spec in MODELS.values():
        for file in spec.files:
            found, looked = locate(file, settings)
            row = _file_row(spec, file, found, looked)
            if spec.name in heads:  # trained here: its data, seed and held-out metrics
                row["trained"] = heads[spec.name].to_dict()
            elif found and spec.name == "faceid-attr-tuned-features":
                row["trained"] = features_provenance(found)
            rows.append(row)
    adapters = list_installed(settings)
    return ModelInventory(rows, adapters, [adapter_row(a, settings) for a in adapters])


def _file_row(
    spec: ModelSpec, file: ModelFile, found: Path | None, looked: object
) -> dict[str, object]:
    return {
        "model": spec.tag,
        "kind": spec.kind,
        "file": file.filename,
        "found": str(found) if found else None,
        "looked": looked,
        "sha256": file.sha256,
        "url": file.url,
        "archive": (
            {"url": file.archive.url, "sha256": file.archive.sha256} if file.archive else None
        ),
        "licence": spec.licence,
        "description": spec.description,
        "input": input_contract(spec),
        "training_data": spec.extra.get("training_data"),
    }


def features_provenance(path: Path) -> dict[str, object]:
    """The tuned features model's recorded provenance, or why it cannot be read."""
    try:
        return {"file": str(path), "provenance": TunedFeatures.load(path).meta}
    except ModelError as exc:
        return {"file": str(path), "error": str(exc)}


def adapter_row(adapter: InstalledAdapter, settings: Settings) -> dict[str, object]:
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


@dataclass(frozen=True)
class FileCheck:
    file: str
    check: str  # "sha256 pin" or "recorded provenance"
    ok: bool


def verify_model_files(settings: Settings) -> list[FileCheck]:
    """Every pinned file that is present, hashed against its pin; with the trained attribute
    set in force, each trained file's recorded provenance."""
    checks = []
    seen: set[Path] = set()
    for spec in MODELS.values():
        for file in spec.files:
            found, _ = locate(file, settings)
            if found is None or file.sha256 is None or found in seen:
                continue
            seen.add(found)
            checks.append(FileCheck(str(found), "sha256 pin", sha256_of(found) == file.sha256))
    if settings.models.attribute_models == "trained":
        for filename in [*HEAD_FILES.values(), FEATURES_FILE]:
            path = heads_dir(settings) / filename
            if path.is_file():
                checks.append(FileCheck(str(path), "recorded provenance", _has_provenance(path)))
    return checks


def _has_provenance(path: Path) -> bool:
    try:
        _, _, meta = read_stamp(ort_session(path, "cpu", path.name), path)
    except FaceIDError:
        return False
    return bool(meta.get("trained_by")) and "seed" in meta
