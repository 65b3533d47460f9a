"""Installing an exported adapter (``faceid learn install``): the file is checked against the
base embedder it was trained on, copied into ``Settings.resolved_adapter_dir`` and described by
its sidecar (:mod:`identity_service.models.adapters`). No torch: only onnxruntime.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from ..config import Settings
from ..errors import ConflictError, ModelFileMissingError, ModelMismatchError, UnknownModelError
from ..models import MODELS
from ..models.adapters import InstalledAdapter, write_atomic
from . import create_embedder
from .adapters import OnnxAdapter


@dataclass(frozen=True)
class RunReport:
    """What an install keeps from a ``faceid learn train`` run's report.json."""

    path: Path
    threshold: float | None
    base: str | None
    data: str | None
    seed: int | None
    recipe: str | None

    @classmethod
    def read(cls, path: Path) -> RunReport:
        try:
            report = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise UnknownModelError(f"cannot read the run report {path}: {exc}") from exc
        # Reports written before the top-level keys existed keep them under adapter/split.
        threshold = report.get("threshold", report.get("adapter", {}).get("threshold"))
        seed = report.get("seed", report.get("split", {}).get("seed"))
        return cls(
            path=path,
            threshold=None if threshold is None else float(threshold),
            base=report.get("base"),
            data=report.get("data"),
            seed=None if seed is None else int(seed),
            recipe=report.get("recipe"),
        )


@dataclass(frozen=True)
class InstallResult:
    adapter: InstalledAdapter
    onnx: Path
    sidecar: Path
    already_installed: bool


def _sources(source: Path) -> tuple[Path, RunReport | None]:
    """The ONNX file and the run report beside it (a run dir, or a file inside one)."""
    source = Path(source)
    onnx = source / "adapter.onnx" if source.is_dir() else source
    if not onnx.is_file():
        raise ModelFileMissingError(
            f"adapter file {onnx} not found: give a `faceid learn train` run folder (it holds "
            "adapter.onnx) or the exported .onnx file",
            file=str(onnx),
        )
    report = onnx.parent / "report.json"
    return onnx, RunReport.read(report) if report.is_file() else None


def _base_dim(base: str, settings: Settings) -> int:
    spec = MODELS.get(base)
    if spec is not None and spec.dim is not None:
        return spec.dim
    return create_embedder(base, settings).dim


def _threshold(
    given: float | None, report: RunReport | None, previous: InstalledAdapter | None
) -> tuple[float | None, str]:
    """``given``, else the run report's, else what an earlier install recorded."""
    if given is not None:
        return given, "given to faceid learn install"
    if report is not None and report.threshold is not None:
        return report.threshold, f"best-accuracy threshold on held-out identities ({report.path})"
    if previous is not None:
        return previous.threshold, previous.threshold_source
    return None, "none: pass --threshold or calibrate the collection"


def _previous(sidecar: Path, sha256: str) -> InstalledAdapter | None:
    if not sidecar.is_file():
        return None
    previous = InstalledAdapter.read(sidecar)
    if previous.sha256 != sha256:
        raise ConflictError(
            f"{sidecar} belongs to another adapter with the same sha8 ({previous.sha256}); "
            "remove it first",
            file=str(sidecar),
        )
    return previous


def _copy_atomic(src: Path, dst: Path) -> None:
    tmp = dst.with_suffix(dst.suffix + ".tmp")
    shutil.copyfile(src, tmp)
    tmp.replace(dst)


def install_adapter(
    source: Path,
    settings: Settings,
    *,
    threshold: float | None = None,
    base: str | None = None,
) -> InstallResult:
    """Copy an exported adapter into the adapter dir and write its sidecar; idempotent.

    The base embedder is ``base``, else the run report's, else ``settings.models.embedder``. The
    threshold is ``threshold``, else the run report's, else the one installed before.
    """
    onnx, report = _sources(source)
    data = onnx.read_bytes()
    adapter = OnnxAdapter(onnx)
    base = base or (report.base if report else None) or settings.models.embedder
    base_dim = _base_dim(base, settings)
    if adapter.in_dim != base_dim:
        raise ModelMismatchError(
            f"adapter {onnx} takes {adapter.in_dim}-d embeddings but {base} gives {base_dim}-d; "
            "pass --base with the embedder it was trained on",
            model=base,
        )
    sha256 = hashlib.sha256(data).hexdigest()
    root = settings.resolved_adapter_dir
    root.mkdir(parents=True, exist_ok=True)
    target, sidecar = root / f"{sha256[:8]}.onnx", root / f"{sha256[:8]}.json"
    previous = _previous(sidecar, sha256)
    value, threshold_source = _threshold(threshold, report, previous)
    installed = InstalledAdapter(
        sha256=sha256,
        base=base,
        in_dim=adapter.in_dim,
        out_dim=adapter.out_dim,
        threshold=value,
        threshold_source=threshold_source,
        source=str(onnx.resolve()),
        report=str(report.path.resolve()) if report else None,
        training_data=report.data if report else None,
        seed=report.seed if report else None,
        recipe=report.recipe if report else None,
        installed_at=previous.installed_at if previous else datetime.now(UTC).isoformat(),
    )
    if not target.is_file() or target.read_bytes() != data:
        _copy_atomic(onnx, target)
    write_atomic(sidecar, installed.to_json())
    return InstallResult(installed, target, sidecar, already_installed=previous == installed)
