"""Face embedders, chosen by registry name (or an ONNX file path for ArcFace-style models)."""

from __future__ import annotations

from pathlib import Path

from ..config import Settings, get_settings
from ..errors import UnknownModelError
from ..models import MODELS, get_model, resolve_file
from .base import Embedder, l2_normalise


def create_embedder(name: str, settings: Settings | None = None) -> Embedder:
    settings = settings or get_settings()
    if name == "dlib-resnet-v1":
        from .dlib_resnet import DlibResNetEmbedder

        return DlibResNetEmbedder(settings)
    from .onnx_arcface import OnnxArcFaceEmbedder

    if name.endswith(".onnx"):
        path = Path(name)
        return OnnxArcFaceEmbedder(path, name=path.stem, version="file", device=settings.device)
    spec = get_model(name)
    if spec.kind != "embedder":
        embedders = sorted(n for n, s in MODELS.items() if s.kind == "embedder")
        raise UnknownModelError(
            f"{name!r} is a {spec.kind}, not an embedder; embedders: {', '.join(embedders)}",
            model=name,
        )
    path = resolve_file(spec.files[0], settings)
    return OnnxArcFaceEmbedder(path, name=spec.name, version=spec.version, device=settings.device)


__all__ = ["Embedder", "create_embedder", "l2_normalise"]
