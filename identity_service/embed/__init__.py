"""Face embedders, chosen by registry name (or an ONNX file path for ArcFace-style models).

``<base>+adapter-<sha8>`` is the base embedder followed by an installed adapter
(``faceid learn install``; see :mod:`identity_service.models.adapters`).
"""

from __future__ import annotations

from pathlib import Path

from ..config import Settings, get_settings
from ..errors import ChecksumMismatchError, ModelMismatchError, UnknownModelError
from ..models import MODELS, get_model, resolve_file
from ..models.adapters import AdapterRef, load_installed, parse_adapter_name
from .adapters import AdaptedEmbedder, OnnxAdapter
from .base import Embedder, l2_normalise
from .dlib_onnx import DlibResNetOnnxEmbedder
from .dlib_resnet import DlibResNetEmbedder
from .fused import FusedEmbedder
from .onnx_arcface import OnnxArcFaceEmbedder
from .tta import TTA_PREFIX


def _views(name: str) -> int:
    suffix = name.removeprefix(TTA_PREFIX)
    if not suffix.isdigit() or int(suffix) < 2:
        raise UnknownModelError(
            f"unknown embedder {name!r}: {TTA_PREFIX}N takes N >= 2 views", model=name
        )
    return int(suffix)


def _adapted(ref: AdapterRef, settings: Settings) -> Embedder:
    installed = load_installed(ref.sha8, settings)
    if installed.base != ref.base:
        raise ModelMismatchError(
            f"adapter {ref.sha8} was installed for base embedder {installed.base}, not "
            f"{ref.base}: use the model name {installed.name}",
            model=ref.name,
        )
    base = create_embedder(ref.base, settings)
    adapter = OnnxAdapter(installed.onnx_path(settings))
    if adapter.sha8 != ref.sha8:
        raise ChecksumMismatchError(
            f"{installed.onnx_path(settings)} does not hash to {ref.sha8}: reinstall the adapter",
            model=ref.name,
        )
    if adapter.in_dim != base.dim:
        raise ModelMismatchError(
            f"adapter {ref.sha8} takes {adapter.in_dim}-d embeddings but {base.name} gives "
            f"{base.dim}-d",
            model=ref.name,
        )
    return AdaptedEmbedder(base, adapter)


def create_embedder(name: str, settings: Settings | None = None) -> Embedder:
    settings = settings or get_settings()
    ref = parse_adapter_name(name)
    if ref is not None:
        return _adapted(ref, settings)
    if name == "dlib-resnet-v1" and settings.models.dlib_runtime == "dlib":
        return DlibResNetEmbedder(settings)
    if name == "dlib-resnet-v1" or name.startswith(TTA_PREFIX):
        views = 1 if name == "dlib-resnet-v1" else _views(name)
        return DlibResNetOnnxEmbedder(settings, views=views)
    if name.endswith(".onnx"):
        path = Path(name)
        return OnnxArcFaceEmbedder(
            path, name=path.stem, version="file", device=settings.models.device
        )
    spec = get_model(name)
    if "fuses" in spec.extra:
        first, second = (create_embedder(str(part), settings) for part in spec.extra["fuses"])  # type: ignore[attr-defined]
        weight = float(spec.extra["weight"])  # type: ignore[arg-type]
        return FusedEmbedder(spec.name, spec.version, (first, second), weight)
    if spec.kind != "embedder":
        embedders = sorted(n for n, s in MODELS.items() if s.kind == "embedder")
        raise UnknownModelError(
            f"{name!r} is a {spec.kind}, not an embedder; embedders: {', '.join(embedders)}",
            model=name,
        )
    path = resolve_file(spec.files[0], settings)
    return OnnxArcFaceEmbedder(
        path,
        name=spec.name,
        version=spec.version,
        device=settings.models.device,
        face_input=spec.face_input,
    )


__all__ = ["Embedder", "create_embedder", "l2_normalise"]
