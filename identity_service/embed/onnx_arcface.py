"""ArcFace-family ONNX embedders (insightface packs such as w600k_r50.onnx, or your own file).

Contract: input (N, 3, H, W) float32 RGB, ``(x - 127.5) / 127.5``, faces aligned to the ArcFace
5-point template; output (N, D) embeddings.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..align import arcface_crop
from ..errors import ModelError
from ..types import Detection
from .base import Embedder


def onnx_providers(device: str) -> list[str]:
    import onnxruntime as ort

    available = ort.get_available_providers()
    if device.startswith("cuda"):
        if "CUDAExecutionProvider" not in available:
            raise ModelError(
                f"device {device!r} asked for, but onnxruntime has no CUDA provider "
                "(install the `gpu` extra: onnxruntime-gpu)"
            )
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


class OnnxArcFaceEmbedder(Embedder):
    def __init__(self, path: Path, name: str, version: str, device: str = "cpu") -> None:
        import onnxruntime as ort

        try:
            self._session = ort.InferenceSession(str(path), providers=onnx_providers(device))
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise ModelError(f"cannot load ONNX embedder {path}: {exc}") from exc
        inp = self._session.get_inputs()[0]
        out = self._session.get_outputs()[0]
        if len(inp.shape) != 4:
            raise ModelError(f"{path}: expected an NCHW image input, got shape {inp.shape}")
        self._input = inp.name
        height, width = inp.shape[2], inp.shape[3]
        self.size = int(height) if isinstance(height, int) else 112
        if isinstance(width, int) and width != self.size:
            raise ModelError(f"{path}: square input expected, got {inp.shape}")
        self._fixed_batch = inp.shape[0] if isinstance(inp.shape[0], int) else None
        dim = out.shape[-1]
        if not isinstance(dim, int):
            raise ModelError(f"{path}: output dimension must be static, got {out.shape}")
        self.dim = dim
        self.name = name
        self.version = version

    def crop(self, image: np.ndarray, detection: Detection) -> np.ndarray:
        return arcface_crop(image, detection.landmarks, self.size)

    def _forward(self, crops: list[np.ndarray]) -> np.ndarray:
        batch = np.stack(crops).astype(np.float32)
        batch = ((batch - 127.5) / 127.5).transpose(0, 3, 1, 2)
        if self._fixed_batch == 1:
            return np.concatenate(
                [self._session.run(None, {self._input: b[None]})[0] for b in batch]
            )
        return self._session.run(None, {self._input: batch})[0]
