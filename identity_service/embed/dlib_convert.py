"""dlib's ResNet as an ONNX graph (``onnx.helper``), converted once into the model cache.

The ``.onnx`` is a reproducible derivation of the CC0 ``.dat``: written at first use, never
shipped; a sidecar records both checksums so a stale or damaged file is regenerated.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ..errors import ModelError
from ..files import write_bytes_atomically
from .dlib_format import CHIP_SIZE, DlibResNet, _Layer, parse_dlib_resnet

DAT_FILENAME = "dlib_face_recognition_resnet_model_v1.dat"
ONNX_FILENAME = "dlib_face_recognition_resnet_model_v1.onnx"
INPUT_NAME = "input"
OUTPUT_NAME = "embedding"
# Bump when the conversion changes: a cached .onnx made by another converter is regenerated.
CONVERTER_VERSION = 1
OPSET = 17


# ------------------------------------------------------------------------------ ONNX graph
def _out_size(n: int, layer: _Layer) -> int:
    """Output rows/cols of a conv or pooling window (dlib, cuDNN and ONNX agree: floor)."""
    return (n + 2 * layer.padding - layer.size) // layer.stride + 1


def build_onnx(net: DlibResNet):
    # One piece on purpose (over 60 lines): one walk over dlib's layers bottom-up, carrying the
    # running tensor, its shape and the tagged ones; each branch is one dlib layer kind in ONNX.
    """The ONNX model: ``input`` (N,3,150,150) RGB 0..255 -> ``embedding`` (N,128) raw."""
    nodes: list = []
    inits: list = []
    used: dict[str, int] = {}

    def fresh(prefix: str) -> str:
        used[prefix] = used.get(prefix, 0) + 1
        return f"{prefix}_{used[prefix]}"

    def const(prefix: str, array: np.ndarray) -> str:
        name = fresh(prefix)
        inits.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def node(op: str, inputs: list[str], **attrs: object) -> str:
        out = fresh(op.lower())
        nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    mean = np.array(net.mean_rgb, dtype=np.float32).reshape(1, 3, 1, 1)
    x = node("Sub", [INPUT_NAME, const("input_mean", mean)])
    x = node("Mul", [x, const("input_scale", np.array(1 / 256, dtype=np.float32))])
    shape = (3, CHIP_SIZE, CHIP_SIZE)  # (channels, rows, cols) of the current tensor
    tags: dict[int, tuple[str, tuple[int, int, int]]] = {}
    layers = net.layers[::-1]  # bottom-up
    i = 0
    while i < len(layers):
        layer = layers[i]
        k, h, w = shape
        if layer.kind == "con":
            weight = layer.params["weight"].astype(np.float64)
            bias = layer.params["bias"].astype(np.float64)
            # dlib's BN<con<...>>: fold the affine into the convolution.
            if i + 1 < len(layers) and layers[i + 1].kind == "affine":
                affine = layers[i + 1]
                gamma = affine.params["gamma"].astype(np.float64).ravel()
                beta = affine.params["beta"].astype(np.float64).ravel()
                weight = weight * gamma[:, None, None, None]
                bias = bias * gamma + beta
                i += 1
            pad = layer.padding
            x = node(
                "Conv",
                [
                    x,
                    const("conv_w", weight.astype(np.float32)),
                    const("conv_b", bias.astype(np.float32)),
                ],
                kernel_shape=[layer.size, layer.size],
                strides=[layer.stride, layer.stride],
                pads=[pad, pad, pad, pad],
            )
            shape = (layer.num_filters, _out_size(h, layer), _out_size(w, layer))
        elif layer.kind == "affine":  # not after a conv: a per-channel x*g + b
            g = layer.params["gamma"].reshape(1, k, 1, 1)
            b = layer.params["beta"].reshape(1, k, 1, 1)
            x = node("Mul", [x, const("affine_g", g)])
            x = node("Add", [x, const("affine_b", b)])
        elif layer.kind == "relu":
            x = node("Relu", [x])
        elif layer.kind in ("max_pool", "avg_pool") and layer.size == 0:
            x = node("GlobalAveragePool" if layer.kind == "avg_pool" else "GlobalMaxPool", [x])
            shape = (k, 1, 1)
        elif layer.kind in ("max_pool", "avg_pool"):
            pad = layer.padding
            x = node(
                "MaxPool" if layer.kind == "max_pool" else "AveragePool",
                [x],
                kernel_shape=[layer.size, layer.size],
                strides=[layer.stride, layer.stride],
                pads=[pad, pad, pad, pad],
            )
            shape = (k, _out_size(h, layer), _out_size(w, layer))
        elif layer.kind == "tag":
            tags[layer.tag] = (x, shape)
        elif layer.kind == "skip":
            x, shape = tags[layer.tag]
        elif layer.kind == "add_prev":
            other, other_shape = tags[layer.tag]
            target = tuple(max(a, b) for a, b in zip(shape, other_shape, strict=True))

            def extend(name: str, have: tuple[int, int, int], want=target) -> str:
                if have == want:
                    return name
                # zero-extend channels and the bottom/right edge, as dlib's tt::add does
                pads = [0, 0, 0, 0, 0, *(b - a for a, b in zip(have, want, strict=True))]
                return node("Pad", [name, const("pads", np.array(pads, dtype=np.int64))])

            x = node("Add", [extend(x, shape), extend(other, other_shape)])
            shape = target
        elif layer.kind == "fc":
            x = node("Flatten", [x], axis=1)
            weight = layer.params["weight"]
            if weight.shape[0] != k * h * w:
                raise ModelError(f"fc expects {weight.shape[0]} inputs, the net gives {shape}")
            nodes.append(
                helper.make_node("MatMul", [x, const("fc_w", weight)], [OUTPUT_NAME], name="fc")
            )
            shape = (weight.shape[1], 1, 1)
        else:  # pragma: no cover
            raise AssertionError(layer.kind)
        i += 1

    graph = helper.make_graph(
        nodes,
        "dlib_face_recognition_resnet_model_v1",
        [
            helper.make_tensor_value_info(
                INPUT_NAME, TensorProto.FLOAT, ["N", 3, CHIP_SIZE, CHIP_SIZE]
            )
        ],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["N", shape[0]])],
        initializer=inits,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="faceid.dlib_onnx",
        producer_version=str(CONVERTER_VERSION),
        doc_string=(
            "dlib_face_recognition_resnet_model_v1 (CC0, Davis King), converted by faceid. "
            "Input: RGB 150x150 dlib face chips, 0..255, NCHW float32. Output: raw 128-d."
        ),
    )
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def convert_dlib_resnet(
    dat_path: str | os.PathLike[str], onnx_path: str | os.PathLike[str]
) -> Path:
    """Convert dlib's face recognition ResNet ``.dat`` to ONNX at ``onnx_path`` (atomically).

    Raises :class:`ModelError` when the file is missing, truncated, or not that network.
    """
    dat_path, onnx_path = Path(dat_path), Path(onnx_path)
    try:
        data = dat_path.read_bytes()
    except OSError as exc:
        raise ModelError(f"cannot read {dat_path}: {exc}", path=str(dat_path)) from exc
    model = build_onnx(parse_dlib_resnet(data, str(dat_path)))
    write_bytes_atomically(onnx_path, model.SerializeToString())
    return onnx_path


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def ensure_onnx(dat_path: Path, cache_dir: Path) -> Path:
    """``<cache_dir>/dlib_face_recognition_resnet_model_v1.onnx``, converted when missing or stale.

    A sidecar ``.onnx.json`` records the sha256 of the source ``.dat``, of the ``.onnx`` and the
    converter version; any mismatch (another .dat, a corrupt or half-written .onnx, a newer
    converter) regenerates the file.
    """
    onnx_path = cache_dir / ONNX_FILENAME
    meta_path = onnx_path.with_name(onnx_path.name + ".json")
    source_sha = _sha256(dat_path)
    try:
        meta = json.loads(meta_path.read_text())
        if (
            meta.get("source_sha256") == source_sha
            and meta.get("converter") == CONVERTER_VERSION
            and onnx_path.is_file()
            and meta.get("onnx_sha256") == _sha256(onnx_path)
        ):
            return onnx_path
    except (OSError, ValueError, AttributeError):
        pass
    convert_dlib_resnet(dat_path, onnx_path)
    meta = {
        "source": DAT_FILENAME,
        "source_sha256": source_sha,
        "onnx_sha256": _sha256(onnx_path),
        "converter": CONVERTER_VERSION,
        "opset": OPSET,
    }
    write_bytes_atomically(meta_path, json.dumps(meta, indent=2).encode())
    return onnx_path
