"""Installed adapters, a source of models: exported ONNX adapters copied into
``Settings.resolved_adapter_dir``.

Each adapter is ``<sha8>.onnx`` plus a JSON sidecar ``<sha8>.json`` (:class:`InstalledAdapter`):
the base embedder it was trained on, its dimensions, its default threshold and where it came
from. ``create_embedder("<base>+adapter-<sha8>")`` builds the base embedder and wraps it with
the installed adapter; :func:`identity_service.models.default_threshold` reads the sidecar's
threshold. Installing one (``faceid learn install``, which checks it against its base
embedder) is :mod:`identity_service.embed.adapter_install`. No torch here.
"""

from __future__ import annotations

import json
import re
import warnings
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from ..config import Settings
from ..errors import ModelFileMissingError, UnknownModelError

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


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file beside it (readers never see half a
    sidecar)."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


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
