"""The threshold a model ships with, used when no calibration is in force."""

from __future__ import annotations

from dataclasses import dataclass

from ..config import Settings, get_settings
from .adapters import find_installed, parse_adapter_name
from .registry import MODELS


@dataclass(frozen=True)
class DefaultThreshold:
    value: float
    source: str


def default_threshold(model: str, settings: Settings | None = None) -> DefaultThreshold | None:
    """A registry model's shipped threshold, or an installed adapter's sidecar threshold.

    ``model`` is an embedder name. ``None`` when it ships none (an adapter attached by hand, or
    installed without a threshold): the caller says what to do instead.
    """
    spec = MODELS.get(model)
    if spec is not None:
        if spec.default_threshold is None:
            return None
        return DefaultThreshold(spec.default_threshold, spec.threshold_source)
    ref = parse_adapter_name(model)
    if ref is None:
        return None
    settings = settings or get_settings()
    installed = find_installed(ref.sha8, settings)
    if installed is None or installed.threshold is None:
        return None
    sidecar = installed.sidecar_path(settings)
    return DefaultThreshold(
        installed.threshold, f"installed adapter sidecar {sidecar}: {installed.threshold_source}"
    )
