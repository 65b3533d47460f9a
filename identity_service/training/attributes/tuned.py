"""Training the tuned network (torch): gender, race and age from dlib's ResNet with its
256-channel stages fine-tuned. What runs it at run time is in
:mod:`identity_service.attributes.tuned` and :mod:`identity_service.attributes.tuned_features`.

The embedding heads (:mod:`identity_service.attributes.heads`) read dlib's 128-d descriptor,
which was trained to tell people apart and keeps only part of what gender and race need. Here the
network is cut where its 256-channel stages begin (input 128x8x8): everything below stays
dlib's, and is run once per training image (the chip and its mirror) and cached; the
256-channel stages, initialised from dlib, are trained together with one linear layer per
attribute on the pooled 256-d features. Age (label-distribution targets, as the age head) is
trained alongside as a third task.

Cutting lower (the 128- or 64-channel stages up trained too, ``TunedRecipe.cut_channels``)
was compared on the validation split (``lab/attributes_cut_validation.py``) and did not do
better, at 1.9x and 3.3x the training time.

The recipe is the standard one for fine-tuning a pretrained network, fixed before any
measurement: AdamW, the pretrained layers at 1e-4 and the new layers at 10x, one-cycle
schedule, weight decay 0.05, label smoothing 0.1, dropout 0.2 on the features, mirror images
as the augmentation.

The network up to its pooled features is exported once (:func:`features_graph`, reading the
flattened 150x150 RGB dlib chip), and each attribute's output layer as a head on those features
(``faceid-attr-<action>-tuned.onnx``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, compose, helper, numpy_helper

from ...attributes.heads import AGE_BINS, INPUT_NAME, IR_VERSION, OPSET, Head, LinearWeights
from ...attributes.tuned import AVERAGED_WITH_HEAD, FEATURE_CHANNELS, TUNED_ACTIONS
from ...attributes.tuned_features import (
    CHIP_DIM,
    CHIP_READS,
    FEATURES_READS,
    TunedFeatures,
)
from ...embed import dlib_convert
from ...embed.dlib_format import CHIP_SIZE, DlibResNet
from .emotion_cnn import native_bf16

__all__ = [
    "AVERAGED_WITH_HEAD",
    "FEATURE_CHANNELS",
    "TUNED_ACTIONS",
    "TunedLabels",
    "TunedNetwork",
    "TunedRecipe",
    "features_graph",
    "train_tuned",
]


@dataclass(frozen=True)
class TunedRecipe:
    epochs: int = 12
    batch_size: int = 64
    lr: float = 1e-4  # pretrained layers; the new output layers take lr * head_lr_factor
    head_lr_factor: float = 10.0
    weight_decay: float = 0.05
    label_smoothing: float = 0.1
    dropout: float = 0.2
    age_weight: float = 0.5
    age_sigma: float = 2.5
    warmup: float = 0.1  # share of the steps the one-cycle rate rises
    bf16: bool = True  # bfloat16 autocast where the CPU has native bf16
    cut_channels: int = 256  # the stages from the first block with this many channels are trained

    def describe(self) -> dict[str, object]:
        return asdict(self)


@dataclass
class TunedLabels:
    """Per image; -1 where the label is unknown (LFW has no race or age)."""

    gender: np.ndarray
    race: np.ndarray
    age: np.ndarray


def _torch():
    try:
        import torch  # optional, torch: the learn extra
    except ImportError as exc:
        raise ImportError(
            "training the tuned heads needs torch: pip install -e '.[learn]'"
        ) from exc
    return torch


class TunedNetwork:
    """dlib's network with the tuned stages and the attribute layers; torch."""

    def __init__(
        self, net: DlibResNet, dropout: float = 0.0, cut_channels: int = TunedRecipe.cut_channels
    ) -> None:
        torch = _torch()
        from .dlib_torch import DlibTorchNet  # imports torch (the `learn` extra)

        self.source = net
        self.dlib = DlibTorchNet(net)
        self.cut = self.dlib.stage_start(cut_channels)
        self.pooled = self.dlib.pooled
        self.outputs = torch.nn.ModuleDict(
            {
                "gender": torch.nn.Linear(FEATURE_CHANNELS, 2),
                "race": torch.nn.Linear(FEATURE_CHANNELS, 5),
                "age": torch.nn.Linear(FEATURE_CHANNELS, AGE_BINS),
            }
        )
        self.dropout = torch.nn.Dropout(dropout)

    def frozen(self, chips: np.ndarray, batch: int = 64, mirror: bool = True) -> np.ndarray:
        """``(N, 150, 150, 3)`` chips -> ``(N, 2, C, H, W)`` float16 activations at the cut,
        of each chip and of its mirror image (``(N, 1, C, H, W)``, the chip's, without
        ``mirror``)."""
        torch = _torch()
        out = None
        with torch.no_grad():
            for start in range(0, len(chips), batch):
                part = chips[start : start + batch]
                views = [
                    self.dlib.run(self.dlib.prepare(v), 0, self.cut)
                    for v in ((part, part[:, :, ::-1]) if mirror else (part,))
                ]
                acts = torch.stack(views, 1).numpy().astype(np.float16)
                if out is None:
                    out = np.zeros((len(chips), *acts.shape[1:]), np.float16)
                out[start : start + len(part)] = acts
        return out if out is not None else np.zeros((0, 2, 1, 1, 1), np.float16)

    def parameters(self, pretrained: bool):
        if pretrained:
            for i in self.dlib.conv_indices(self.cut, self.pooled):
                yield from self.dlib.convs[i].parameters()
        else:
            yield from self.outputs.parameters()

    def train(self, mode: bool = True) -> None:
        self.dlib.train(mode)
        self.dropout.train(mode)

    def logits(self, acts):
        features = self.dlib.run(acts, self.cut, self.pooled).flatten(1)
        features = self.dropout(features)
        return {action: layer(features) for action, layer in self.outputs.items()}

    def probabilities(self, acts: np.ndarray, batch: int = 256) -> dict[str, np.ndarray]:
        """``(N, 2, C, H, W)`` activations from :meth:`frozen` -> per action ``(N, k)``
        probabilities, chip and mirror averaged."""
        torch = _torch()
        self.train(False)
        parts: dict[str, list[np.ndarray]] = {a: [] for a in TUNED_ACTIONS}
        with torch.no_grad():
            for start in range(0, len(acts), batch):
                x = torch.as_tensor(acts[start : start + batch]).float()
                views = [self.logits(x[:, v]) for v in range(x.shape[1])]
                for action in TUNED_ACTIONS:
                    p = torch.stack([v[action].softmax(1) for v in views]).mean(0)
                    parts[action].append(p.numpy())
        return {a: np.concatenate(p) if p else np.zeros((0, 1)) for a, p in parts.items()}

    def export(
        self, classes: dict[str, tuple[str, ...]], meta: dict[str, object]
    ) -> tuple[TunedFeatures, dict[str, Head]]:
        """The network up to its pooled features as one graph, and one head (its output layer)
        per action in ``classes``; both carry the export's ``features_id``."""
        eye = np.eye(FEATURE_CHANNELS, dtype=np.float32)  # projection: the features themselves
        graph = features_graph(self.dlib.to_dlib(self.source, eye))
        features_id = hashlib.sha256(graph).hexdigest()[:16]
        features = TunedFeatures(graph, {**meta, "reads": CHIP_READS, "features_id": features_id})
        heads = {}
        for action, names in classes.items():
            layer = self.outputs[action]
            weights = LinearWeights(layer.weight.detach().numpy().T, layer.bias.detach().numpy())
            head_meta = {**meta, "reads": FEATURES_READS, "features_id": features_id}
            heads[action] = Head.from_weights(f"{action}-tuned", names, weights, head_meta)
        return features, heads


def train_tuned(
    net: DlibResNet,
    acts: np.ndarray,
    labels: TunedLabels,
    *,
    seed: int,
    recipe: TunedRecipe | None = None,
    progress: Callable[[int, float], None] | None = None,
) -> TunedNetwork:
    """Train on :meth:`TunedNetwork.frozen` activations; ``progress`` gets each finished epoch
    and its mean training loss."""
    torch = _torch()
    recipe = recipe or TunedRecipe()
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    model = TunedNetwork(net, recipe.dropout, recipe.cut_channels)
    _check_cut(model, acts, recipe)
    x = torch.as_tensor(np.ascontiguousarray(acts))
    targets = {
        a: torch.as_tensor(np.asarray(getattr(labels, a), np.int64))
        for a in ("gender", "race", "age")
    }
    n = len(x)
    opt, schedule = _optimiser(model, recipe, recipe.epochs * -(-n // recipe.batch_size))
    bf16 = recipe.bf16 and native_bf16()
    model.train()
    for epoch in range(recipe.epochs):
        order = torch.randperm(n, generator=g)
        total = 0.0
        for start in range(0, n, recipe.batch_size):
            rows = order[start : start + recipe.batch_size]
            view = torch.randint(0, x.shape[1], (len(rows),), generator=g)
            batch = x[rows, view].float()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                out = model.logits(batch)
            loss = _multitask_loss(out, {a: y[rows] for a, y in targets.items()}, recipe)
            opt.zero_grad()
            loss.backward()
            opt.step()
            schedule.step()
            total += float(loss.detach()) * len(rows)
        if progress:
            progress(epoch + 1, total / n)
    model.train(False)
    return model


def _check_cut(model: TunedNetwork, acts: np.ndarray, recipe: TunedRecipe) -> None:
    expected = model.frozen(np.zeros((1, CHIP_SIZE, CHIP_SIZE, 3), np.uint8)).shape[2:]
    if acts.shape[2:] != expected:
        raise ValueError(
            f"activations of shape {acts.shape[2:]} are not those at the recipe's cut "
            f"({recipe.cut_channels} channels: {expected}); compute them with "
            f"TunedNetwork(net, cut_channels={recipe.cut_channels}).frozen"
        )


def _optimiser(model: TunedNetwork, recipe: TunedRecipe, steps: int) -> tuple[Any, Any]:
    """AdamW with the pretrained stages at ``recipe.lr`` and the new layers faster, on a
    one-cycle schedule of ``steps``."""
    torch = _torch()
    head_lr = recipe.lr * recipe.head_lr_factor
    opt = torch.optim.AdamW(
        [
            {"params": list(model.parameters(pretrained=True)), "lr": recipe.lr},
            {"params": list(model.parameters(pretrained=False)), "lr": head_lr},
        ],
        weight_decay=recipe.weight_decay,
    )
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=[recipe.lr, head_lr], total_steps=steps, pct_start=recipe.warmup
    )
    return opt, schedule


def _multitask_loss(out: dict[str, Any], y: dict[str, Any], recipe: TunedRecipe) -> Any:
    """A batch's loss: cross-entropy on the known genders and races, plus, weighted, the age
    bins' cross-entropy against a Gaussian around each known age (an unknown label is -1)."""
    torch = _torch()
    import torch.nn.functional as F  # torch: the `learn` extra

    loss = torch.zeros(())
    for action in ("gender", "race"):
        known = y[action] >= 0
        if known.any():
            loss = loss + F.cross_entropy(
                out[action].float()[known],
                y[action][known],
                label_smoothing=recipe.label_smoothing,
            )
    known = y["age"] >= 0
    if known.any() and recipe.age_weight > 0:
        bins = torch.arange(AGE_BINS, dtype=torch.float32)
        years = y["age"][known].clamp(0, AGE_BINS - 1).float()
        target = torch.exp(-0.5 * ((bins[None] - years[:, None]) / recipe.age_sigma) ** 2)
        target = target / target.sum(1, keepdim=True)
        log_p = F.log_softmax(out["age"].float()[known], 1)
        loss = loss + recipe.age_weight * -(target * log_p).sum(1).mean()
    return loss


def features_graph(net: DlibResNet) -> bytes:
    """``embeddings`` (n, 67500) flattened HWC chip -> ``net``'s graph (its projection should
    be the identity, so the output is the pooled features)."""

    body = dlib_convert.build_onnx(net)
    body.ir_version = IR_VERSION
    pre = helper.make_graph(
        [
            helper.make_node("Reshape", [INPUT_NAME, "chip_shape"], ["hwc"]),
            helper.make_node("Transpose", ["hwc"], [dlib_convert.INPUT_NAME], perm=[0, 3, 1, 2]),
        ],
        "chip",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["n", CHIP_DIM])],
        [
            helper.make_tensor_value_info(
                dlib_convert.INPUT_NAME, TensorProto.FLOAT, ["n", 3, CHIP_SIZE, CHIP_SIZE]
            )
        ],
        initializer=[
            numpy_helper.from_array(np.array([-1, CHIP_SIZE, CHIP_SIZE, 3], np.int64), "chip_shape")
        ],
    )
    pre_model = helper.make_model(pre, opset_imports=[helper.make_opsetid("", OPSET)])
    pre_model.ir_version = IR_VERSION
    model = compose.merge_models(
        pre_model, body, io_map=[(dlib_convert.INPUT_NAME, dlib_convert.INPUT_NAME)]
    )
    model.producer_name = "faceid.attributes"
    model.doc_string = "faceid tuned network: flattened 150x150 RGB dlib chip (0..255) -> features"
    onnx.checker.check_model(model)
    return model.SerializeToString()
