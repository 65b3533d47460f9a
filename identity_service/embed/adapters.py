"""An exported adapter attached to a base :class:`Embedder` (``identity_service.training.metric``
trains and exports one).

Loading needs only onnxruntime (a core dependency), not torch. The wrapped embedder has its own
tag, ``<base name>+adapter-<sha8>@<base version>``, so its vectors never mix with the base
model's in an index.

Using it for a collection: install the exported file (``faceid learn install RUN_DIR``, see
:mod:`.adapter_install` and :mod:`identity_service.models.adapters`), then name the adapted
model like any other embedder::

    service.create_collection("staff-adapted", model="dlib-resnet-v1-tta8+adapter-1a2b3c4d")

``create_embedder`` resolves ``<base>+adapter-<sha8>`` to the base embedder wrapped with the
installed adapter, and the adapter's default threshold (the cosine-distance ``threshold`` of
the run's ``report.json``, or ``--threshold``) comes from its sidecar until a calibration is in
force. Enrol, find and verify then go through the wrapped embedder and its tag. Faces already
stored under the base tag must be re-enrolled (``faceid migrate-model``) or their vectors
passed through :meth:`AdaptedEmbedder.adapt`.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import onnxruntime as ort

from ..errors import UnknownModelError
from ..types import Detection
from .base import Embedder, l2_normalise


class OnnxAdapter:
    """The exported adapter as a numpy function: ``embeddings (n, in_dim) -> (n, out_dim)``."""

    def __init__(self, path: Path) -> None:
        data = Path(path).read_bytes()
        self.sha8 = hashlib.sha256(data).hexdigest()[:8]
        try:
            self.session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises several unrelated types for bad files
            raise UnknownModelError(
                f"{path} is not an ONNX adapter: onnxruntime cannot load it ({exc})"
            ) from exc
        inputs = self.session.get_inputs()
        self.in_dim = _feature_dim(inputs, path, "input")
        self.out_dim = _feature_dim(self.session.get_outputs(), path, "output")
        if inputs[0].name != "embeddings":
            raise UnknownModelError(
                f"{path} is not an ONNX adapter: its input is {inputs[0].name!r}, "
                "not 'embeddings' (see training.metric.adapter.export_adapter)"
            )

    def __call__(self, embeddings: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(embeddings, dtype=np.float32)
        return self.session.run(None, {"embeddings": x})[0]


def _feature_dim(args: list, path: Path, what: str) -> int:
    """The fixed feature size of a single ``(n, dim)`` input or output."""
    shapes = [arg.shape for arg in args]
    if len(shapes) != 1 or len(shapes[0]) != 2 or not isinstance(shapes[0][1], int):
        raise UnknownModelError(
            f"{path} is not an ONNX adapter: expected one {what} of shape (n, dim), found {shapes}"
        )
    return int(shapes[0][1])


class AdaptedEmbedder(Embedder):
    """A base embedder followed by an adapter: same crops, adapted L2-normalised vectors."""

    def __init__(self, base: Embedder, adapter: OnnxAdapter) -> None:
        self.base = base
        self.adapter = adapter
        self.name = f"{base.name}+adapter-{adapter.sha8}"
        self.version = base.version
        self.dim = adapter.out_dim

    def crop(self, image: np.ndarray, detection: Detection) -> np.ndarray:
        return self.base.crop(image, detection)

    def _forward(self, crops: list[np.ndarray]) -> np.ndarray:
        # The adapter was trained on the base's normalised vectors.
        return self.adapter(l2_normalise(self.base._forward(crops)))

    def adapt(self, embeddings: np.ndarray) -> np.ndarray:
        """Adapted vectors for already-computed base embeddings (re-embedding a collection)."""
        return l2_normalise(self.adapter(l2_normalise(embeddings)))


def attach_adapter(base: Embedder, path: Path) -> AdaptedEmbedder:
    return AdaptedEmbedder(base, OnnxAdapter(path))
