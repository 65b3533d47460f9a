"""Reading dlib's serialized ResNet (``dlib_face_recognition_resnet_model_v1.dat``) in numpy.

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

import math
from dataclasses import dataclass, field

import numpy as np

from ..errors import ModelError

CHIP_SIZE = 150
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
            raise self.error("dlib's old ASCII float format is not supported")
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
    params: dict[str, np.ndarray] = field(default_factory=dict)

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
