"""Export a trained adapter (or CNN) to ONNX (torch); :mod:`identity_service.embed.adapters` runs
the exported file with onnxruntime and attaches it to a base embedder."""

from __future__ import annotations

import warnings
from pathlib import Path


def export_adapter(model, path: Path, in_dim: int | None = None) -> Path:
    """ONNX graph ``embeddings (n, in_dim) -> adapted (n, out_dim)`` with a dynamic batch."""
    return export_onnx(model, path, (2, in_dim or model.in_dim), "embeddings", "adapted")


def export_onnx(
    model, path: Path, example_shape: tuple[int, ...], input_name: str, output_name: str
) -> Path:
    """``model`` (on CPU, eval mode) as an ONNX graph of one float32 input and one output, both
    with a dynamic first (batch) axis; ``example_shape`` fixes the other axes."""
    import torch  # the `learn` extra

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.cpu().eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript-based exporter
        torch.onnx.export(
            model,
            (torch.zeros(*example_shape),),
            str(path),
            input_names=[input_name],
            output_names=[output_name],
            dynamic_axes={input_name: {0: "n"}, output_name: {0: "n"}},
            dynamo=False,
        )
    return path
