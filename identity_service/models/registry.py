"""Where a model's files are found, checked and fetched (the models are in :mod:`.catalog`).

A file is looked up, in order: the model folder (``FACEID_MODEL_DIR``, default ``<shared>/models``),
faceid's own cache (``<data_dir>/cache/models``: downloads, conversions, trained heads), then the
PyPI packages that carry it; else it is downloaded when downloads are allowed, into
``FACEID_MODEL_DIR`` when set, else into faceid's cache (the shared folder is only read).
If none works, :class:`ModelFileMissingError` names the file, where it looked and how to supply it.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from ..config import Settings, get_settings
from ..errors import ChecksumMismatchError, ModelFileMissingError, UnknownModelError
from .catalog import MODELS
from .download import download, download_member, sha256_of
from .spec import Archive, FaceInput, ModelFile, ModelSpec

__all__ = [
    "MODELS",
    "Archive",
    "FaceInput",
    "ModelFile",
    "ModelSpec",
    "get_model",
    "locate",
    "resolve_file",
]


def get_model(name: str) -> ModelSpec:
    try:
        return MODELS[name]
    except KeyError:
        raise UnknownModelError(
            f"unknown model {name!r}; known models: {', '.join(sorted(MODELS))}", model=name
        ) from None


def _package_dir(package: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def locate(file: ModelFile, settings: Settings | None = None) -> tuple[Path | None, list[str]]:
    """Where ``file`` is found without downloading, and every place that was looked at."""
    settings = settings or get_settings()
    looked: list[str] = []
    in_folder = settings.resolved_model_dir / file.filename
    looked.append(str(in_folder))
    if in_folder.is_file():
        return in_folder, looked
    # Files faceid derives or trains itself (ONNX conversions, attribute heads) live here.
    derived = settings.model_cache_dir / file.filename
    looked.append(str(derived))
    if derived.is_file():
        return derived, looked
    if file.package:
        pkg_dir = _package_dir(file.package)
        if pkg_dir is None:
            looked.append(f"python package {file.package} (not installed)")
        else:
            candidate = pkg_dir / file.package_subdir / file.filename
            looked.append(str(candidate))
            if candidate.is_file():
                return candidate, looked
    return None, looked


def _download_dir(settings: Settings) -> Path:
    """``FACEID_MODEL_DIR`` when set; else faceid's own cache, never the shared folder."""
    folder = settings.models.model_dir
    return folder if folder is not None else settings.model_cache_dir


_verified: dict[Path, str] = {}


def _verify(path: Path, file: ModelFile) -> Path:
    if file.sha256 is None:
        return path
    if _verified.get(path) != file.sha256:
        actual = sha256_of(path)
        if actual != file.sha256:
            raise ChecksumMismatchError(
                f"model file {path} has sha256 {actual}, expected {file.sha256}; "
                "delete it so a good copy can be fetched",
                path=str(path),
            )
        _verified[path] = actual
    return path


def resolve_file(file: ModelFile, settings: Settings | None = None) -> Path:
    """Return a verified local path for ``file``, downloading it into the cache if allowed."""
    settings = settings or get_settings()
    found, looked = locate(file, settings)
    if found is not None:
        return _verify(found, file)
    target = _download_dir(settings) / file.filename
    hint = (
        f"place {file.filename} in {settings.resolved_model_dir} "
        "(or set FACEID_MODEL_DIR to a folder holding it)"
    )
    if (file.url or file.archive) and settings.models.allow_download:
        try:
            if file.url:
                return download(file.url, target, file.sha256)
            assert file.archive is not None
            a = file.archive
            return download_member(a.url, a.sha256, a.member, target, file.sha256)
        except ModelFileMissingError as exc:
            raise ModelFileMissingError(
                f"model file {file.filename} not found (looked in: {'; '.join(looked)}) and "
                f"download failed ({exc.message}); {hint}",
                filename=file.filename,
                looked=looked,
            ) from exc
    raise ModelFileMissingError(
        f"model file {file.filename} not found (looked in: {'; '.join(looked)}); {hint}"
        + ("" if file.url or file.archive else "; it has no public download URL"),
        filename=file.filename,
        looked=looked,
    )
