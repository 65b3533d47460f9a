"""ArcFace-family ONNX embedders: MobileFaceNet-192, insightface packs such as w600k_r50.onnx,
or your own file.

The face is aligned to the ArcFace 112x112 5-point template by a least-squares similarity fit
on all five landmarks (:func:`identity_service.align.arcface_crop`). The model's
:class:`~identity_service.models.FaceInput` says the rest: tensor layout, pixel scaling, and
whether the face and its mirror image are averaged. The default (a file given by path) is
insightface's: NCHW, ``(x - 127.5) / 127.5``, one view.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from ..align import arcface_crop
from ..errors import ModelError
from ..models import FaceInput
from ..types import Detection
from .base import Embedder


def onnx_providers(device: str) -> list[str]:
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
    def __init__(
        self,
        path: Path,
        name: str,
        version: str,
        device: str = "cpu",
        face_input: FaceInput | None = None,
    ) -> None:

        self.face_input = face_input or FaceInput()
        try:
            self._session = ort.InferenceSession(str(path), providers=onnx_providers(device))
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise ModelError(f"cannot load ONNX embedder {path}: {exc}") from exc
        inp = self._session.get_inputs()[0]
        out = self._session.get_outputs()[0]
        if len(inp.shape) != 4:
            raise ModelError(f"{path}: expected a 4-d image input, got shape {inp.shape}")
        self._input = inp.name
        nhwc = self.face_input.layout == "nhwc"
        height, width, channels = (
            (inp.shape[1], inp.shape[2], inp.shape[3])
            if nhwc
            else (inp.shape[2], inp.shape[3], inp.shape[1])
        )
        if isinstance(channels, int) and channels != 3:
            raise ModelError(
                f"{path}: expected 3 colour channels in {self.face_input.layout.upper()} "
                f"layout, got input shape {inp.shape}"
            )
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

    def tensor(self, crops: list[np.ndarray]) -> np.ndarray:
        """The model's input for a batch of aligned RGB crops (mirrors appended when the
        contract averages them)."""
        batch = np.stack(crops).astype(np.float32)
        if self.face_input.mirror:
            batch = np.concatenate([batch, batch[:, :, ::-1]])
        batch = (batch - self.face_input.mean) / self.face_input.std
        if self.face_input.layout == "nchw":
            batch = batch.transpose(0, 3, 1, 2)
        return np.ascontiguousarray(batch, dtype=np.float32)

    def _forward(self, crops: list[np.ndarray]) -> np.ndarray:
        batch = self.tensor(crops)
        if self._fixed_batch == 1:
            out = np.concatenate(
                [self._session.run(None, {self._input: b[None]})[0] for b in batch]
            )
        else:
            out = self._session.run(None, {self._input: batch})[0]
        if self.face_input.mirror:
            # Each view is normalised first so neither dominates the average.
            n = len(crops)
            views = out[:n], out[n:]
            out = sum(
                v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12) for v in views
            )
        return np.asarray(out, dtype=np.float32)
