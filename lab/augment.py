"""Training augmentation for the tuned network: random views of each training chip, drawn
once and run through the frozen layers once (the frozen layers make per-epoch augmentation
cost a full pass each epoch; a fixed set of views per image costs one).

The distribution is the usual one for training face-attribute networks, fixed before any
measurement: a random affine (rotation within +-10 degrees, scale 0.9-1.1, shift within +-5 %
of the chip), a mirror with probability 1/2, and colour jitter of brightness, contrast and
saturation by factors in 0.8-1.2 (torchvision's ``RandomAffine`` and ``ColorJitter(0.2, 0.2,
0.2)``). Views are drawn from a fixed seed, so the training input is reproducible.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from identity_service.embed.tta import View, render

GREY = np.array([0.299, 0.587, 0.114], np.float32)  # ITU-R 601 luma, as torchvision's


@dataclass(frozen=True)
class Augmentation:
    degrees: float = 10.0
    scale: float = 0.1  # face size times 1 +- this
    shift: float = 0.05  # as a share of the chip
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2

    def describe(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class Colour:
    brightness: float = 1.0
    contrast: float = 1.0
    saturation: float = 1.0


def draw(rng: np.random.Generator, spec: Augmentation) -> tuple[View, Colour]:
    def factor(spread: float) -> float:
        return float(rng.uniform(1 - spread, 1 + spread))

    view = View(
        degrees=float(rng.uniform(-spec.degrees, spec.degrees)),
        height=1 / factor(spec.scale),  # render's height: the face's share of the crop
        shift_x=float(rng.uniform(-spec.shift, spec.shift)),
        shift_y=float(rng.uniform(-spec.shift, spec.shift)),
        mirror=bool(rng.random() < 0.5),
    )
    colour = Colour(factor(spec.brightness), factor(spec.contrast), factor(spec.saturation))
    return view, colour


def recolour(chip: np.ndarray, colour: Colour) -> np.ndarray:
    """Brightness, then contrast (towards the mean grey), then saturation (towards each pixel's
    grey), as torchvision's ``ColorJitter`` applies them in a fixed order."""
    x = chip.astype(np.float32) * colour.brightness
    x = np.clip(x, 0, 255)
    mean = float((x @ GREY).mean())
    x = np.clip(mean + (x - mean) * colour.contrast, 0, 255)
    grey = (x @ GREY)[..., None]
    x = np.clip(grey + (x - grey) * colour.saturation, 0, 255)
    return np.rint(x).astype(np.uint8)


def augmented_chips(
    chips: np.ndarray, views: int, seed: int, spec: Augmentation | None = None
) -> np.ndarray:
    """``(N, 150, 150, 3)`` chips -> ``(N, views, 150, 150, 3)`` random views of each."""
    spec = spec or Augmentation()
    rng = np.random.default_rng(seed)
    out = np.empty((len(chips), views, *chips.shape[1:]), np.uint8)
    for i, chip in enumerate(chips):
        for v in range(views):
            view, colour = draw(rng, spec)
            out[i, v] = recolour(render(chip, view), colour)
    return out
