"""The tuned network at run time: dlib's ResNet with its tuned 256-channel stages as one ONNX
graph (``faceid-attr-tuned-features.onnx``), from the flattened 150x150 RGB dlib chip to the
pooled 256-d features that the tuned heads (``faceid-attr-<action>-tuned.onnx``, one output
layer each) read. The network runs once per face (chip and mirror) whatever the number of
attributes asked. Needs onnxruntime only; ``identity_service.training.attributes.tuned`` trains
and exports it with torch.
"""

from __future__ import annotations

from dataclasses import InitVar, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..config import Settings, get_settings
from ..embed.dlib_format import CHIP_SIZE
from ..errors import ModelError
from ..files import write_bytes_atomically
from .heads import attribute_path, heads_dir, read_stamp, stamp
from .runtime import ort_session

FEATURES_FILE = "faceid-attr-tuned-features.onnx"
FEATURES_NAME = "tuned-features"
FEATURES_READS = "tuned-features"  # what a tuned head reads: this model's output
CHIP_READS = "dlib-chip-150"  # what this model reads: the dlib face chip, flattened
CHIP_DIM = CHIP_SIZE * CHIP_SIZE * 3
BATCH = 64


@dataclass
class TunedFeatures:
    """The features model as an onnxruntime session; :meth:`of` runs it."""

    model: bytes = field(repr=False)
    meta: dict[str, object] = field(default_factory=dict)
    device: str = "cpu"
    dim: int = field(init=False)
    _session: Any = field(init=False, repr=False, compare=False)
    _input: str = field(init=False, repr=False)
    session: InitVar[Any] = None  # one already built for ``model`` on ``device`` (by load)

    def __post_init__(self, session: Any) -> None:
        self._session = session or ort_session(self.model, self.device, "the tuned network")
        self._input = self._session.get_inputs()[0].name
        dim = self._session.get_outputs()[0].shape[-1]
        if not isinstance(dim, int):
            raise ModelError(f"the tuned network's output {dim!r} has no fixed size")
        self.dim = dim

    @property
    def id(self) -> str | None:
        """Names this export; the heads exported with it carry the same ``features_id``."""
        value = self.meta.get("features_id")
        return None if value is None else str(value)

    @classmethod
    def load(cls, path: Path, device: str = "cpu") -> TunedFeatures:
        model = path.read_bytes()
        session = ort_session(model, device, str(path))
        name, _, meta = read_stamp(session, path)
        if name != FEATURES_NAME:
            raise ModelError(f"{path} is not the tuned network's features model ({name!r})")
        return cls(model, meta, device, session)

    def save(self, path: Path) -> Path:
        self.model = stamp(self.model, FEATURES_NAME, (), self.meta)
        write_bytes_atomically(path, self.model)
        return path

    def of(self, chips: np.ndarray) -> np.ndarray:
        """``(N, 150, 150, 3)`` uint8 chips -> ``(N, 2, 256)`` features of each chip and of its
        mirror image."""
        if not len(chips):
            return np.zeros((0, 2, self.dim), np.float32)
        views = np.stack([chips, chips[:, :, ::-1]], axis=1).reshape(-1, CHIP_DIM)
        parts = [
            self._session.run(None, {self._input: views[s : s + BATCH].astype(np.float32)})[0]
            for s in range(0, len(views), BATCH)
        ]
        return np.concatenate(parts).reshape(len(chips), 2, self.dim)


def features_path(settings: Settings | None = None) -> Path:
    return heads_dir(settings) / FEATURES_FILE


def load_features(settings: Settings | None = None) -> TunedFeatures:
    """The tuned network in force (published, or the trained one: see ``attribute_path``)."""
    settings = settings or get_settings()
    path = attribute_path(FEATURES_FILE, settings)
    assert path is not None
    return TunedFeatures.load(path, settings.models.device)
