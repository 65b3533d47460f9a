"""onnxruntime sessions for the attribute models, on the provider the ``device`` setting picks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import onnxruntime as ort

from ..embed.onnx_arcface import onnx_providers
from ..errors import ModelError


def ort_session(model: Path | bytes, device: str, what: str, *, threads: int = 0) -> Any:
    """An ``InferenceSession`` on ``device`` ("cpu", "cuda", "cuda:N").

    Raises :class:`ModelError` when the GPU provider is missing (as the embedders do) or when
    onnxruntime cannot load ``model``. ``threads=0`` leaves onnxruntime's default pool.
    """

    providers = onnx_providers(device)
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    source = str(model) if isinstance(model, Path) else model
    try:
        session = ort.InferenceSession(source, sess_options=options, providers=providers)
    except Exception as exc:  # onnxruntime raises its own untyped errors
        raise ModelError(f"cannot load {what}: {exc}") from exc
    # onnxruntime quietly drops to CPU when the CUDA provider is listed but cannot start.
    if device.startswith("cuda") and "CUDAExecutionProvider" not in session.get_providers():
        raise ModelError(
            f"device {device!r} asked for, but onnxruntime could not start its CUDA provider "
            f"for {what} (check the CUDA and cuDNN libraries onnxruntime-gpu needs)"
        )
    return session
