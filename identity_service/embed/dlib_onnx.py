"""dlib's ResNet-29 face descriptor, converted to ONNX and run through onnxruntime.

``dlib_face_recognition_resnet_model_v1.dat`` (CC0, Davis King) is read in pure Python/numpy
and rebuilt as an ONNX graph with ``onnx.helper``; the embeddings match
``dlib.face_recognition_model_v1.compute_face_descriptor`` to ~1e-5 (see
tests/unit/test_dlib_onnx.py). The ``.onnx`` is a reproducible derivation of the ``.dat``: it is
written to ``<cache_dir>/models`` at first use, never shipped.

The network (dlib's examples/dnn_face_recognition_ex.cpp)::

    block<N,stride>  = affine<con<N,3,3,1,1,relu<affine<con<N,3,3,stride,stride,S>>>>>
    ares<N>          = relu<add_prev1<block<N,1,tag1<S>>>>
    ares_down<N>     = relu<add_prev2<avg_pool<2,2,2,2,skip1<tag2<block<N,2,tag1<S>>>>>>>
    net = loss_metric<fc_no_bias<128,avg_pool_everything<
            ares_down<256> ares<256>x2 ares_down<256> ares<128>x2 ares_down<128>
            ares<64>x3 ares_down<64> ares<32>x3
            max_pool<3,3,2,2,relu<affine<con<32,7,7,2,2,input_rgb_image_sized<150>>>>>>>>

What the conversion relies on, read from dlib's sources (dlib/serialize.h, dlib/float_details.h,
dlib/cuda/tensor.h, dlib/dnn/core.h, layers.h, input.h, loss.h):

* integers: a control byte (low 4 bits = byte count, bit 7 = negative) then the magnitude,
  little endian; ``bool`` is the ASCII byte ``'1'``/``'0'``; strings are a length then bytes;
  ``float``/``double`` are two such integers, mantissa then exponent (value = m * 2**e;
  exponents 32000/32001/32002 mean +inf/-inf/nan). (serialize.h's header comment says
  "exponent and then the mantissa"; the code, and this file, write the mantissa first.)
* a tensor is version 2, four integers (n, k, nr, nc), then raw little-endian float32; an
  ``alias_tensor`` (a view's shape) is version 1 and the four integers only.
* a network is written outermost first: each wrapper writes its version, then its whole subnet,
  then its own details, so the layer details follow bottom-up after the input layer.
* conv and pooling padding: ``stride != 1 ? 0 : size/2`` (also stored in the file and checked);
  a conv is a cross-correlation with a bias; ``affine`` (the test-time form of batch norm) is a
  per-channel ``x*g + b``, folded here into the conv below it.
* ``add_prev`` adds tensors of different shapes into the elementwise-max shape, each zero-extended
  (channels and the bottom/right of the image): ``ares_down`` pads the shortcut's channels, and
  at 8->3 / 4->1 pixels the conv branch is smaller than the 2x2 average pool (4x4 / 2x2).
* input: ``(pixel - mean) / 256`` per RGB channel, means stored in the file (~122.78, 117.00,
  104.30); output: the raw 128-d ``fc_no_bias`` output (loss_metric does not normalise).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..config import Settings, get_settings
from ..errors import ModelError, UnknownModelError
from ..models import get_model, resolve_file
from .dlib_resnet import DlibResNetEmbedder
from .onnx_arcface import onnx_providers

DAT_FILENAME = "dlib_face_recognition_resnet_model_v1.dat"
ONNX_FILENAME = "dlib_face_recognition_resnet_model_v1.onnx"
INPUT_NAME = "input"
OUTPUT_NAME = "embedding"
CHIP_SIZE = 150
# Bump when the conversion changes: a cached .onnx made by another converter is regenerated.
CONVERTER_VERSION = 1
OPSET = 17

_FLOAT_SPECIAL = {32000: math.inf, 32001: -math.inf, 32002: math.nan}


# ------------------------------------------------------------------------------ dlib stream
class _Reader:
    """dlib's serialization primitives over an in-memory byte string."""

    def __init__(self, data: bytes, source: str) -> None:
        self.data = data
        self.pos = 0
        self.source = source

    def error(self, what: str) -> ModelError:
        return ModelError(
            f"{self.source}: not a dlib face recognition ResNet file "
            f"({what}, at byte {self.pos} of {len(self.data)})",
            path=self.source,
            offset=self.pos,
        )

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise self.error(f"truncated: needed {n} more bytes")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def int_(self) -> int:
        control = self.take(1)[0]
        size = control & 0x0F
        if size > 8 or control & 0x70:
            raise self.error(f"bad integer control byte 0x{control:02x}")
        value = int.from_bytes(self.take(size), "little") if size else 0
        return -value if control & 0x80 else value

    def bool_(self) -> bool:
        byte = self.take(1)
        if byte not in (b"0", b"1"):
            raise self.error(f"bad bool byte {byte!r}")
        return byte == b"1"

    def string(self) -> str:
        size = self.int_()
        if size > 1000:
            raise self.error(f"implausible string length {size}")
        try:
            return self.take(size).decode("ascii")
        except UnicodeDecodeError:
            raise self.error("non-ASCII layer name") from None

    def float_(self) -> float:
        if self.pos < len(self.data) and self.data[self.pos] & 0x70:
            raise self.error("old ASCII float format (dlib < 18.x) is not supported")
        mantissa = self.int_()
        exponent = self.int_()
        if exponent in _FLOAT_SPECIAL:
            return _FLOAT_SPECIAL[exponent]
        return math.ldexp(mantissa, exponent)

    def shape4(self) -> tuple[int, int, int, int]:
        dims = (self.int_(), self.int_(), self.int_(), self.int_())
        if any(d < 0 for d in dims):
            raise self.error(f"negative tensor dimension {dims}")
        return dims

    def tensor(self) -> np.ndarray:
        version = self.int_()
        if version != 2:
            raise self.error(f"tensor version {version}, expected 2")
        dims = self.shape4()
        count = math.prod(dims)
        raw = self.take(4 * count)
        return np.frombuffer(raw, dtype="<f4").reshape(dims).astype(np.float32)

    def alias(self) -> tuple[int, int, int, int]:
        version = self.int_()
        if version != 1:
            raise self.error(f"alias_tensor version {version}, expected 1")
        return self.shape4()


# ------------------------------------------------------------------------------ architecture
@dataclass
class _Layer:
    kind: str  # con | affine | relu | max_pool | avg_pool | add_prev | fc | tag | skip
    num_filters: int = 0
    size: int = 0  # kernel / window size; 0 = the whole image (avg_pool_everything)
    stride: int = 1
    tag: int = 0  # tag id for tag / skip / add_prev
    params: dict[str, object] = field(default_factory=dict)

    @property
    def padding(self) -> int:
        return 0 if self.stride != 1 else self.size // 2

    @property
    def is_wrapper(self) -> bool:
        return self.kind in ("tag", "skip")


def _block(n: int, stride: int) -> list[_Layer]:
    return [
        _Layer("affine"),
        _Layer("con", n, 3, 1),
        _Layer("relu"),
        _Layer("affine"),
        _Layer("con", n, 3, stride),
    ]


def _ares(n: int) -> list[_Layer]:
    return [_Layer("relu"), _Layer("add_prev", tag=1), *_block(n, 1), _Layer("tag", tag=1)]


def _ares_down(n: int) -> list[_Layer]:
    return [
        _Layer("relu"),
        _Layer("add_prev", tag=2),
        _Layer("avg_pool", size=2, stride=2),
        _Layer("skip", tag=1),
        _Layer("tag", tag=2),
        *_block(n, 2),
        _Layer("tag", tag=1),
    ]


def _architecture() -> list[_Layer]:
    """dlib's anet_type, top (fc) to bottom (first conv), without the loss and input layers."""
    layers = [_Layer("fc", 128), _Layer("avg_pool", size=0, stride=1)]
    layers += _ares_down(256)  # alevel0
    layers += _ares(256) + _ares(256) + _ares_down(256)  # alevel1
    layers += _ares(128) + _ares(128) + _ares_down(128)  # alevel2
    layers += _ares(64) + _ares(64) + _ares(64) + _ares_down(64)  # alevel3
    layers += _ares(32) + _ares(32) + _ares(32)  # alevel4
    layers += [
        _Layer("max_pool", size=3, stride=2),
        _Layer("relu"),
        _Layer("affine"),
        _Layer("con", 32, 7, 2),
    ]
    return layers


# ------------------------------------------------------------------------------ layer details
def _expect(r: _Reader, what: str, found: object, wanted: object) -> None:
    if found != wanted:
        raise r.error(f"{what}: found {found!r}, expected {wanted!r}")


def _read_con(r: _Reader, layer: _Layer) -> None:
    version = r.string()
    if version not in ("con_4", "con_5", "con_6"):
        raise r.error(f"unsupported conv layer version {version!r}")
    params = r.tensor().ravel()
    num_filters, nr, nc = r.int_(), r.int_(), r.int_()
    stride_y, stride_x = r.int_(), r.int_()
    padding_y, padding_x = r.int_(), r.int_()
    filters = r.alias()
    biases = r.alias()
    for _ in range(4):  # learning-rate / weight-decay multipliers
        r.float_()
    use_bias = r.bool_() if version in ("con_5", "con_6") else True
    use_relu = r.bool_() if version == "con_6" else False
    _expect(r, "conv filters", num_filters, layer.num_filters)
    _expect(r, "conv size", (nr, nc), (layer.size, layer.size))
    _expect(r, "conv stride", (stride_y, stride_x), (layer.stride, layer.stride))
    _expect(r, "conv padding", (padding_y, padding_x), (layer.padding, layer.padding))
    _expect(r, "conv relu", use_relu, False)
    if filters[0] != num_filters or filters[2:] != (nr, nc):
        raise r.error(f"conv filter shape {filters} does not fit {num_filters}x{nr}x{nc}")
    n_weights = math.prod(filters)
    n_bias = biases[0] * biases[1] * biases[2] * biases[3] if use_bias else 0
    if use_bias and n_bias != num_filters:
        raise r.error(f"conv bias shape {biases} does not fit {num_filters} filters")
    _expect(r, "conv parameter count", params.size, n_weights + n_bias)
    layer.params["weight"] = params[:n_weights].reshape(filters)
    layer.params["bias"] = (
        params[n_weights:] if use_bias else np.zeros(num_filters, dtype=np.float32)
    )


def _read_affine(r: _Reader, layer: _Layer) -> None:
    version = r.string()
    if version not in ("affine_", "affine_2"):
        # dlib can also build an affine layer from a stored batch-norm layer ("bn_con2", the
        # training net); the released model stores affine_ layers, so only those are read.
        raise r.error(f"unsupported affine layer version {version!r}")
    params = r.tensor().ravel()
    gamma, beta = r.alias(), r.alias()
    mode = r.int_()
    disabled = r.bool_() if version == "affine_2" else False
    _expect(r, "affine mode (0 = per channel)", mode, 0)
    _expect(r, "affine disabled", disabled, False)
    channels = math.prod(gamma)
    _expect(r, "affine beta shape", beta, gamma)
    _expect(r, "affine parameter count", params.size, 2 * channels)
    layer.params["gamma"] = params[:channels]
    layer.params["beta"] = params[channels:]


def _read_pool(r: _Reader, layer: _Layer, name: str) -> None:
    version = r.string()
    _expect(r, f"{name} layer version", version, f"{name}_2")
    nr, nc = r.int_(), r.int_()
    stride_y, stride_x = r.int_(), r.int_()
    padding_y, padding_x = r.int_(), r.int_()
    _expect(r, f"{name} size", (nr, nc), (layer.size, layer.size))
    _expect(r, f"{name} stride", (stride_y, stride_x), (layer.stride, layer.stride))
    _expect(r, f"{name} padding", (padding_y, padding_x), (layer.padding, layer.padding))


def _read_fc(r: _Reader, layer: _Layer) -> None:
    version = r.string()
    if version not in ("fc_2", "fc_3"):
        raise r.error(f"unsupported fc layer version {version!r}")
    num_outputs, num_inputs = r.int_(), r.int_()
    params = r.tensor()
    weights = r.alias()
    r.alias()  # biases (empty for fc_no_bias)
    bias_mode = r.int_()
    for _ in range(4):
        r.float_()
    use_bias = r.bool_() if version == "fc_3" else True
    _expect(r, "fc outputs", num_outputs, layer.num_filters)
    _expect(r, "fc bias mode (1 = no bias)", bias_mode, 1)
    _expect(r, "fc weight shape", (weights[0], weights[1]), (num_inputs, num_outputs))
    _expect(r, "fc parameter count", params.size, num_inputs * num_outputs)
    del use_bias  # meaningless without a bias vector
    layer.params["weight"] = params.reshape(num_inputs, num_outputs)


def _read_details(r: _Reader, layer: _Layer) -> None:
    if layer.kind == "con":
        _read_con(r, layer)
    elif layer.kind == "affine":
        _read_affine(r, layer)
    elif layer.kind == "relu":
        _expect(r, "layer", r.string(), "relu_")
    elif layer.kind == "add_prev":
        _expect(r, "layer", r.string(), "add_prev_")
    elif layer.kind == "max_pool":
        _read_pool(r, layer, "max_pool")
    elif layer.kind == "avg_pool":
        _read_pool(r, layer, "avg_pool")
    elif layer.kind == "fc":
        _read_fc(r, layer)
    else:  # pragma: no cover - the architecture lists no other kind
        raise AssertionError(layer.kind)


@dataclass
class DlibResNet:
    """The parsed network: input means and the layers, top to bottom, with their weights."""

    mean_rgb: tuple[float, float, float]
    layers: list[_Layer]


def parse_dlib_resnet(data: bytes, source: str = "<bytes>") -> DlibResNet:
    """Parse a serialized dlib face recognition ResNet (``anet_type``); ModelError if it isn't."""
    r = _Reader(data, source)
    _expect(r, "loss layer version", r.int_(), 1)
    loss = r.string()
    if loss == "loss_metric_2":
        r.float_(), r.float_()  # margin, distance threshold
    elif loss != "loss_metric_":
        raise r.error(f"loss layer {loss!r}, expected loss_metric_")
    layers = _architecture()
    versions: list[int] = []
    for i, layer in enumerate(layers):
        version = r.int_()
        if layer.is_wrapper:
            ok = version == 1
        elif i == len(layers) - 1:  # the add_layer sitting on the input layer
            ok = version in (2, 3)
        else:
            ok = version in (1, 2)
        if not ok:
            raise r.error(f"layer {i} ({layer.kind}): unexpected version {version}")
        versions.append(version)
    _expect(r, "input layer", r.string(), "input_rgb_image_sized")
    mean_rgb = (r.float_(), r.float_(), r.float_())
    _expect(r, "input size", (r.int_(), r.int_()), (CHIP_SIZE, CHIP_SIZE))
    for i in range(len(layers) - 1, -1, -1):
        layer = layers[i]
        if layer.is_wrapper:
            continue
        _read_details(r, layer)
        for _ in range(3):  # setup-called, gradient-stale, output-disabled flags
            r.bool_()
        r.tensor(), r.tensor()  # x_grad, cached_output (training state)
        if i == len(layers) - 1:
            r.tensor()  # grad_final
            if versions[i] >= 3:
                r.int_()  # sample expansion factor
        elif versions[i] == 2:
            r.tensor()  # params_grad
    if r.pos != len(data):
        raise r.error(f"{len(data) - r.pos} unexpected trailing bytes")
    return DlibResNet(mean_rgb, layers)


# ------------------------------------------------------------------------------ ONNX graph
def _out_size(n: int, layer: _Layer) -> int:
    """Output rows/cols of a conv or pooling window (dlib, cuDNN and ONNX agree: floor)."""
    return (n + 2 * layer.padding - layer.size) // layer.stride + 1


def _build_onnx(net: DlibResNet):
    """The ONNX model: ``input`` (N,3,150,150) RGB 0..255 -> ``embedding`` (N,128) raw."""
    try:
        import onnx
        from onnx import TensorProto, helper, numpy_helper
    except ImportError as exc:
        raise ModelError(
            "converting dlib's ResNet to ONNX needs the `onnx` package (pip install onnx)"
        ) from exc

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
    model = _build_onnx(parse_dlib_resnet(data, str(dat_path)))
    _atomic_write(onnx_path, model.SerializeToString())
    return onnx_path


def _atomic_write(path: Path, payload: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=path.name + ".", suffix=".part", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o666 & ~umask)  # mkstemp makes 0600; give it a normal file's mode
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


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
    _atomic_write(meta_path, json.dumps(meta, indent=2).encode())
    return onnx_path


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


# ------------------------------------------------------------------------------ embedder
class DlibResNetOnnxEmbedder(DlibResNetEmbedder):
    """dlib's ResNet through onnxruntime: the same 150x150 chip (``crop`` is dlib's), batched.

    ``flip=True`` averages the raw embeddings of each chip and its mirror image (test-time
    augmentation; twice the compute). It changes the embeddings, so it has its own version
    ("1-flip"): an index never mixes the two.
    """

    name = "dlib-resnet-v1-onnx"
    version = "1"
    dim = 128

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        flip: bool = False,
        device: str | None = None,
        threads: int | None = None,
    ) -> None:
        import dlib
        import onnxruntime as ort

        settings = settings or get_settings()
        try:
            spec = get_model(self.name)
        except UnknownModelError:  # not registered (yet): the same files as dlib-resnet-v1
            spec = get_model("dlib-resnet-v1")
        files = {f.filename: resolve_file(f, settings) for f in spec.files}
        # What DlibResNetEmbedder.crop uses; dlib's own network is not loaded.
        self._sp5 = dlib.shape_predictor(str(files["shape_predictor_5_face_landmarks.dat"]))
        self._lock = threading.Lock()

        self.flip = flip
        if flip:
            self.version = "1-flip"
        self.onnx_path = ensure_onnx(files[DAT_FILENAME], settings.cache_dir / "models")
        self.threads = threads or _cpu_count()
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        try:
            self._session = ort.InferenceSession(
                str(self.onnx_path),
                sess_options=options,
                providers=onnx_providers(device or settings.device),
            )
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise ModelError(f"cannot load {self.onnx_path}: {exc}") from exc

    def _forward(self, crops: list[np.ndarray]) -> np.ndarray:
        batch = np.stack([np.asarray(c, dtype=np.uint8) for c in crops])
        if batch.shape[1:] != (CHIP_SIZE, CHIP_SIZE, 3):
            raise ValueError(
                f"dlib face chips are {CHIP_SIZE}x{CHIP_SIZE}x3 RGB, got {batch.shape[1:]}"
            )
        batch = batch.transpose(0, 3, 1, 2).astype(np.float32)
        if self.flip:
            batch = np.concatenate([batch, batch[..., ::-1]])
        out = self._session.run([OUTPUT_NAME], {INPUT_NAME: np.ascontiguousarray(batch)})[0]
        if self.flip:
            n = len(crops)
            out = (out[:n] + out[n:]) * 0.5
        return out.astype(np.float32, copy=False)
