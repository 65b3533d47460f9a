"""dlib's ResNet as a torch module, for fine-tuning its last stages (:mod:`.tuned`).

Built from the same parsed ``.dat`` as the ONNX conversion
(:mod:`identity_service.embed.dlib_format`), walking the
layers bottom-up in the same way; each ``affine`` (dlib's test-time batch norm) is folded into
the convolution below it, so every weight is an ordinary ``Conv2d``. The output equals dlib's
own descriptor to ~1e-6 (tests/unit/test_dlib_torch.py).
"""

from __future__ import annotations

import numpy as np

from ...embed.dlib_format import DlibResNet, _Layer

try:
    import torch
    import torch.nn.functional as F
    from torch import nn
except ImportError as exc:  # pragma: no cover - torch is the `learn` extra
    raise ImportError("fine-tuning dlib's ResNet needs torch: pip install -e '.[learn]'") from exc

Op = (
    tuple  # ("con", index) | ("relu",) | (pool kind, size, stride, pad) | (tag kind, tag) | ("fc",)
)


class DlibTorchNet(nn.Module):
    """``run(x, start, stop)`` applies ops ``start:stop``; :meth:`prepare` makes ``x`` from chips.

    Ops between ``start`` and ``stop`` may not use a tag set before ``start``: cut the network
    only where no residual branch is open (:meth:`stage_start`).
    """

    def __init__(self, net: DlibResNet) -> None:
        super().__init__()
        self.register_buffer(
            "mean", torch.tensor(net.mean_rgb, dtype=torch.float32).view(1, 3, 1, 1)
        )
        self.convs = nn.ModuleList()
        self.ops: list[Op] = []
        layers = net.layers[::-1]  # bottom-up
        i = 0
        while i < len(layers):
            layer = layers[i]
            if layer.kind == "con":
                weight = layer.params["weight"].astype(np.float64)
                bias = layer.params["bias"].astype(np.float64)
                if i + 1 < len(layers) and layers[i + 1].kind == "affine":
                    gamma = layers[i + 1].params["gamma"].astype(np.float64).ravel()
                    beta = layers[i + 1].params["beta"].astype(np.float64).ravel()
                    weight, bias = weight * gamma[:, None, None, None], bias * gamma + beta
                    i += 1
                conv = nn.Conv2d(
                    weight.shape[1], weight.shape[0], layer.size, layer.stride, layer.padding
                )
                conv.weight.data = torch.tensor(weight, dtype=torch.float32)
                conv.bias.data = torch.tensor(bias, dtype=torch.float32)
                self.convs.append(conv)
                self.ops.append(("con", len(self.convs) - 1))
            elif layer.kind == "relu":
                self.ops.append(("relu",))
            elif layer.kind in ("max_pool", "avg_pool"):
                self.ops.append((layer.kind, layer.size, layer.stride, layer.padding))
            elif layer.kind in ("tag", "skip", "add_prev"):
                self.ops.append((layer.kind, layer.tag))
            elif layer.kind == "fc":
                self.fc = nn.Parameter(torch.tensor(layer.params["weight"], dtype=torch.float32))
                self.ops.append(("fc",))
            else:  # an affine not after a convolution: dlib's face ResNet has none
                raise ValueError(f"unsupported layer {layer.kind!r} at {i}")
            i += 1

    def prepare(self, chips: np.ndarray) -> torch.Tensor:
        """``(N, 150, 150, 3)`` uint8 RGB chips -> the network's normalised NCHW input."""
        x = torch.as_tensor(np.ascontiguousarray(chips)).permute(0, 3, 1, 2).float()
        return (x - self.mean) / 256

    def to_dlib(self, net: DlibResNet, fc: np.ndarray | None = None) -> DlibResNet:
        """A copy of ``net`` (the network this module was built from) carrying this module's
        weights, and ``fc`` ``(256, k)`` in place of the embedding projection when given: what
        :func:`.dlib_convert.build_onnx` writes as a graph. The folded affines become identities.
        """
        convs = iter(self.convs)
        layers: list[_Layer] = []
        for layer in net.layers[::-1]:
            params = dict(layer.params)
            if layer.kind == "con":
                conv = next(convs)
                params["weight"] = conv.weight.detach().numpy().astype(np.float32)
                params["bias"] = (
                    conv.bias.detach()
                    .numpy()
                    .astype(np.float32)
                    .reshape(layer.params["bias"].shape)
                )
            elif layer.kind == "affine":
                params = {
                    k: np.full_like(v, 1.0 if k == "gamma" else 0.0) for k, v in params.items()
                }
            elif layer.kind == "fc" and fc is not None:
                params["weight"] = np.asarray(fc, np.float32)
            layers.append(
                _Layer(layer.kind, layer.num_filters, layer.size, layer.stride, layer.tag, params)
            )
        return DlibResNet(net.mean_rgb, layers[::-1])

    def stage_start(self, channels: int) -> int:
        """Index of the first op of the first block with ``channels`` output channels."""
        for i, op in enumerate(self.ops):
            if op[0] == "con" and self.convs[op[1]].out_channels == channels:
                while self.ops[i][0] != "tag":
                    i -= 1
                return i
        raise ValueError(f"no stage with {channels} channels")

    @property
    def pooled(self) -> int:
        """Index just past the global average pool: ``run(x, start, pooled)`` gives features."""
        return next(i for i, op in enumerate(self.ops) if op[0] == "avg_pool" and op[1] == 0) + 1

    def conv_indices(self, start: int, stop: int | None = None) -> list[int]:
        return [op[1] for op in self.ops[start:stop] if op[0] == "con"]

    def run(self, x: torch.Tensor, start: int = 0, stop: int | None = None) -> torch.Tensor:
        tags: dict[int, torch.Tensor] = {}
        for op in self.ops[start:stop]:
            kind = op[0]
            if kind == "con":
                x = self.convs[op[1]](x)
            elif kind == "relu":
                x = F.relu(x)
            elif kind == "max_pool":
                x = F.max_pool2d(x, op[1], op[2], op[3])
            elif kind == "avg_pool":
                x = x.mean((2, 3), keepdim=True) if op[1] == 0 else F.avg_pool2d(*(x, *op[1:]))
            elif kind == "tag":
                tags[op[1]] = x
            elif kind == "skip":
                x = tags[op[1]]
            elif kind == "add_prev":
                x = _add_extended(x, tags[op[1]])
            else:  # fc
                x = x.flatten(1) @ self.fc
        return x


def _add_extended(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """dlib's ``add_prev``: both zero-extended (channels, bottom and right) to the larger shape."""
    c, h, w = (max(a.shape[k], b.shape[k]) for k in (1, 2, 3))

    def extend(t: torch.Tensor) -> torch.Tensor:
        return F.pad(t, (0, w - t.shape[3], 0, h - t.shape[2], 0, c - t.shape[1]))

    return extend(a) + extend(b)
