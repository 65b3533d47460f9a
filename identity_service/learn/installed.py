"""Installed adapters: exported ONNX adapters copied into ``Settings.resolved_adapter_dir``.

Each adapter is ``<sha8>.onnx`` plus a JSON sidecar ``<sha8>.json`` (:class:`InstalledAdapter`):
the base embedder it was trained on, its dimensions, its default threshold and where it came
from. ``create_embedder("<base>+adapter-<sha8>")`` builds the base embedder and wraps it with
the installed adapter; :func:`identity_service.models.default_threshold` reads the sidecar's
threshold. No torch here: installing and loading need only onnxruntime.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import warnings
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from pathlib import Path

from ..config import Settings
from ..errors import ConflictError, ModelFileMissingError, ModelMismatchError, UnknownModelError

MARK = "+adapter-"
_NAME = re.compile(r"^(?P<base>.+)\+adapter-(?P<sha8>[0-9a-f]{8})$")
INSTALL_HINT = "faceid learn install RUN_DIR_OR_ONNX"


@dataclass(frozen=True)
class AdapterRef:
    """The parts of an adapted embedder name ``<base>+adapter-<sha8>``."""

    base: str
    sha8: str

    @property
    def name(self) -> str:
        return f"{self.base}{MARK}{self.sha8}"


def parse_adapter_name(name: str) -> AdapterRef | None:
    """``None`` for a name without ``+adapter-``; a malformed adapter name is an error."""
    if MARK not in name:
        return None
    match = _NAME.match(name)
    if match is None:
        raise UnknownModelError(
            f"bad adapter model name {name!r}: expected <base embedder>+adapter-<8 hex digits>",
            model=name,
        )
    return AdapterRef(match["base"], match["sha8"])


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
class InstalledAdapter:
    """The sidecar ``<sha8>.json`` of an installed adapter."""

    sha256: str
    base: str
    in_dim: int
    out_dim: int
    threshold: float | None
    threshold_source: str
    source: str  # the ONNX file it was installed from
    report: str | None  # that run's report.json, if there was one
    training_data: str | None
    seed: int | None
    recipe: str | None
    installed_at: str

    @property
    def sha8(self) -> str:
        return self.sha256[:8]

    @property
    def name(self) -> str:
        return AdapterRef(self.base, self.sha8).name

    def onnx_path(self, settings: Settings) -> Path:
        return settings.resolved_adapter_dir / f"{self.sha8}.onnx"

    def sidecar_path(self, settings: Settings) -> Path:
        return settings.resolved_adapter_dir / f"{self.sha8}.json"

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def read(cls, path: Path) -> InstalledAdapter:
        data = json.loads(path.read_text())
        return cls(**{f.name: data.get(f.name) for f in fields(cls)})


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
    from ..models import MODELS

    spec = MODELS.get(base)
    if spec is not None and spec.dim is not None:
        return spec.dim
    from ..embed import create_embedder

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


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def install_adapter(
    source: Path,
    settings: Settings,
    *,
    threshold: float | None = None,
    base: str | None = None,
) -> InstallResult:
    """Copy an exported adapter into the adapter dir and write its sidecar; idempotent.

    The base embedder is ``base``, else the run report's, else ``settings.embedder``. The
    threshold is ``threshold``, else the run report's, else the one installed before.
    """
    from .adapter import OnnxAdapter

    onnx, report = _sources(source)
    data = onnx.read_bytes()
    adapter = OnnxAdapter(onnx)
    base = base or (report.base if report else None) or settings.embedder
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
    _write_atomic(sidecar, installed.to_json())
    return InstallResult(installed, target, sidecar, already_installed=previous == installed)


_sidecars: dict[Path, tuple[tuple[int, int, int], InstalledAdapter]] = {}


def find_installed(sha8: str, settings: Settings) -> InstalledAdapter | None:
    """The sidecar of an installed adapter, or ``None``.

    ``find`` asks on every call for a collection on an adapter; the parsed sidecar is kept
    while the file (mtime, size, inode) stays the same, so that costs one ``stat``.
    """
    sidecar = settings.resolved_adapter_dir / f"{sha8}.json"
    try:
        st = sidecar.stat()
    except OSError:
        _sidecars.pop(sidecar, None)
        return None
    stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
    kept = _sidecars.get(sidecar)
    if kept is not None and kept[0] == stamp:
        return kept[1]
    installed = InstalledAdapter.read(sidecar)
    _sidecars[sidecar] = (stamp, installed)
    return installed


def load_installed(sha8: str, settings: Settings) -> InstalledAdapter:
    """The sidecar of an installed adapter whose ONNX file is there; typed errors otherwise."""
    root = settings.resolved_adapter_dir
    installed = find_installed(sha8, settings)
    if installed is None:
        raise UnknownModelError(
            f"adapter {sha8} is not installed in {root} (FACEID_ADAPTER_DIR): "
            f"install it with `{INSTALL_HINT}`",
            model=f"adapter-{sha8}",
        )
    onnx = installed.onnx_path(settings)
    if not onnx.is_file():
        raise ModelFileMissingError(
            f"adapter file {onnx} is missing (its sidecar is there): "
            f"reinstall it with `{INSTALL_HINT}`",
            file=str(onnx),
        )
    return installed


def list_installed(settings: Settings) -> list[InstalledAdapter]:
    """Every installed adapter, by sha; an unreadable sidecar is skipped with a warning."""
    root = settings.resolved_adapter_dir
    found = []
    for sidecar in sorted(root.glob("*.json")) if root.is_dir() else []:
        try:
            found.append(InstalledAdapter.read(sidecar))
        except (OSError, ValueError, TypeError) as exc:
            warnings.warn(f"skipping unreadable adapter sidecar {sidecar}: {exc}", stacklevel=2)
    return found
