"""Training the emotion CNN (torch): a small CNN for 7-class expression, trained by
``faceid train-attributes`` on FER2013's own 48x48 grey faces, and saved as a head
(``faceid-attr-emotion-cnn.onnx``). What it reads at run time (:func:`grey_face`) is in
:mod:`identity_service.attributes.emotion_cnn`.

It reads the same ArcFace-aligned crop as the FER model, made grey and 48x48. The FER model was
trained on other (colour, higher-resolution) expression data; this network learns FER2013's
own look, and :class:`~identity_service.attributes.emotion.EmotionModel` averages the two
answers.

The network is VGG-style (four stages of 3x3 convolutions with batch norm, global average
pooling, dropout, one linear layer). Batch norm is folded into the convolutions on export, so
the ONNX graph is ``Reshape, (Conv, Relu)+, MaxPool, ..., GlobalAveragePool, Gemm, Softmax``.
The graph's input is the face flattened to 2,304 values in 0..255, so it loads and runs as any
other :class:`~identity_service.attributes.heads.Head`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ...attributes.emotion_cnn import CNN_DIM, CNN_SIDE
from ...attributes.heads import INPUT_NAME, IR_VERSION, OPSET, OUTPUT_NAME, Head


@dataclass(frozen=True)
class CnnRecipe:
    """A standard recipe for a batch-normed CNN trained from scratch: SGD with Nesterov
    momentum under a one-cycle rate, weight decay, label smoothing, and flips plus small random
    rotations, scalings and shifts. ``epochs`` is set by what 2 CPU cores train in about half
    an hour (~42 s an epoch with bf16)."""

    widths: tuple[int, ...] = (32, 64, 128, 256)
    epochs: int = 50
    batch_size: int = 128
    lr: float = 0.1
    weight_decay: float = 5e-4
    label_smoothing: float = 0.1
    dropout: float = 0.4
    rotate_deg: float = 10.0
    scale: float = 0.1
    shift: float = 0.1  # of the side
    bf16: bool = True  # bfloat16 autocast where the CPU has native bf16 (2-3x faster)


def _network(widths: tuple[int, ...], k: int, dropout: float):
    import torch.nn as nn  # optional, torch: the learn extra

    layers: list[nn.Module] = []
    channels = 1
    for stage, width in enumerate(widths):
        for _ in range(2):
            layers += [
                nn.Conv2d(channels, width, 3, padding=1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
            ]
            channels = width
        if stage < len(widths) - 1:
            layers.append(nn.MaxPool2d(2))
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(channels, k)]
    return nn.Sequential(*layers)


def _normalized(faces):
    return (faces.float() / 255.0 - 0.5) / 0.5


def _augment(x, recipe: CnnRecipe, g):
    """Random flip, rotation, scale and shift of a ``(B, 1, 48, 48)`` batch."""
    import torch  # optional, torch: the learn extra
    import torch.nn.functional as F

    n = x.shape[0]

    def uniform(low: float, high: float):
        return torch.rand(n, generator=g) * (high - low) + low

    angle = torch.deg2rad(uniform(-recipe.rotate_deg, recipe.rotate_deg))
    scale = uniform(1 - recipe.scale, 1 + recipe.scale)
    flip = torch.where(torch.rand(n, generator=g) < 0.5, -1.0, 1.0)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1] = cos * flip, -sin
    theta[:, 1, 0], theta[:, 1, 1] = sin * flip, cos
    theta[:, :, 2] = torch.stack([uniform(-1, 1), uniform(-1, 1)], 1) * 2 * recipe.shift
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, padding_mode="border", align_corners=False)


def train_cnn(
    faces: np.ndarray,
    y: np.ndarray,
    classes: tuple[str, ...],
    *,
    seed: int,
    recipe: CnnRecipe | None = None,
    progress: Callable[[int, float], None] | None = None,
) -> Head:
    """Train on ``(N, 48, 48)`` uint8 faces; returns the network as a head. ``progress`` gets
    each finished epoch and its mean training loss."""
    import torch  # optional, torch: the learn extra

    recipe = recipe or CnnRecipe()
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    model = _network(recipe.widths, len(classes), recipe.dropout)
    xt = torch.as_tensor(np.ascontiguousarray(faces, np.uint8)).unsqueeze(1)
    yt = torch.as_tensor(np.asarray(y, np.int64))
    steps_per_epoch = -(-len(xt) // recipe.batch_size)
    opt = torch.optim.SGD(
        model.parameters(),
        lr=recipe.lr,
        momentum=0.9,
        nesterov=True,
        weight_decay=recipe.weight_decay,
    )
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=recipe.lr, total_steps=recipe.epochs * steps_per_epoch
    )
    bf16 = recipe.bf16 and native_bf16()
    model.train()
    for epoch in range(recipe.epochs):
        order = torch.randperm(len(xt), generator=g)
        total = 0.0
        for start in range(0, len(xt), recipe.batch_size):
            rows = order[start : start + recipe.batch_size]
            batch = _augment(_normalized(xt[rows]), recipe, g)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                logits = model(batch)
            loss = torch.nn.functional.cross_entropy(
                logits.float(), yt[rows], label_smoothing=recipe.label_smoothing
            )
            opt.zero_grad()
            loss.backward()
            opt.step()
            schedule.step()
            total += float(loss.detach()) * len(rows)
        if progress:
            progress(epoch + 1, total / len(xt))
    model.eval()
    meta: dict[str, object] = {
        "seed": seed,
        "network": f"vgg{list(recipe.widths)}",
        "epochs": recipe.epochs,
        "precision": "bf16 autocast" if bf16 else "fp32",
    }
    return Head("emotion-cnn", tuple(classes), cnn_model(model, len(classes)), meta)


def native_bf16() -> bool:
    import torch  # optional, torch: the learn extra

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def cnn_model(network, k: int) -> bytes:
    """The ONNX graph of a trained :func:`_network` (eval mode): batch norm folded into the
    convolutions, input the flattened 0..255 face."""
    inits = [
        numpy_helper.from_array(np.array([-1, 1, CNN_SIDE, CNN_SIDE], np.int64), "shape"),
        numpy_helper.from_array(np.array(1 / 127.5, np.float32), "scale"),
        numpy_helper.from_array(np.array(1.0, np.float32), "one"),
    ]
    nodes = [
        helper.make_node("Reshape", [INPUT_NAME, "shape"], ["image"]),
        helper.make_node("Mul", ["image", "scale"], ["scaled"]),
        helper.make_node("Sub", ["scaled", "one"], ["t0"]),
    ]
    tensor = _append_layers(list(network), "t0", nodes, inits)
    nodes.append(helper.make_node("Softmax", [tensor], [OUTPUT_NAME], axis=1))
    graph = helper.make_graph(
        nodes,
        "faceid_attr_emotion_cnn",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["n", CNN_DIM])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["n", k])],
        initializer=inits,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="faceid.attributes",
        doc_string="faceid emotion CNN: 48x48 grey face (flattened, 0..255) -> probabilities",
    )
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    return model.SerializeToString()


def _append_layers(modules: list, tensor: str, nodes: list, inits: list) -> str:
    """The ONNX nodes (and initializers) of ``modules`` applied to ``tensor``, each conv with
    the batch norm after it folded in; returns the name of the last output."""
    import torch.nn as nn  # optional, torch: the learn extra

    i, n = 0, 0
    while i < len(modules):
        m = modules[i]
        n += 1
        out = f"t{n}"
        if isinstance(m, nn.Conv2d):
            bn = modules[i + 1]
            w, b = _fold(m, bn)
            inits += [numpy_helper.from_array(w, f"w{n}"), numpy_helper.from_array(b, f"b{n}")]
            nodes.append(helper.make_node("Conv", [tensor, f"w{n}", f"b{n}"], [out], pads=[1] * 4))
            tensor, i = out, i + 2  # the conv and its batch norm
            continue
        if isinstance(m, nn.ReLU):
            nodes.append(helper.make_node("Relu", [tensor], [out]))
        elif isinstance(m, nn.MaxPool2d):
            nodes.append(
                helper.make_node("MaxPool", [tensor], [out], kernel_shape=[2, 2], strides=[2, 2])
            )
        elif isinstance(m, nn.AdaptiveAvgPool2d):
            nodes.append(helper.make_node("GlobalAveragePool", [tensor], [out]))
        elif isinstance(m, nn.Flatten):
            nodes.append(helper.make_node("Flatten", [tensor], [out], axis=1))
        elif isinstance(m, nn.Dropout):
            out = tensor  # identity at inference
        elif isinstance(m, nn.Linear):
            w = m.weight.detach().numpy().astype(np.float32)
            b = m.bias.detach().numpy().astype(np.float32)
            inits += [numpy_helper.from_array(w, f"w{n}"), numpy_helper.from_array(b, f"b{n}")]
            nodes.append(helper.make_node("Gemm", [tensor, f"w{n}", f"b{n}"], [out], transB=1))
        else:
            raise TypeError(f"no ONNX mapping for {type(m).__name__}")
        tensor, i = out, i + 1
    return tensor


def _fold(conv, bn) -> tuple[np.ndarray, np.ndarray]:
    scale = (bn.weight / (bn.running_var + bn.eps).sqrt()).detach().numpy()
    w = conv.weight.detach().numpy() * scale[:, None, None, None]
    bias = conv.bias.detach().numpy() if conv.bias is not None else 0.0
    b = (bias - bn.running_mean.detach().numpy()) * scale + bn.bias.detach().numpy()
    return w.astype(np.float32), b.astype(np.float32)
