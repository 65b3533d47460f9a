"""dlib's ResNet-29 face descriptor run through onnxruntime (CPU or CUDA), batched.

The graph is converted from dlib's own CC0 weights (see dlib_format.py and dlib_convert.py);
its embeddings equal ``dlib.face_recognition_model_v1.compute_face_descriptor`` to ~1e-6
(tests/unit/test_dlib_onnx.py) at about 20x less CPU per face.
"""

from __future__ import annotations

import os
import threading

import dlib
import numpy as np
import onnxruntime as ort

from ..config import Settings, get_settings
from ..errors import ModelError
from ..models import get_model, resolve_file
from .dlib_convert import DAT_FILENAME, INPUT_NAME, OUTPUT_NAME, ensure_onnx
from .dlib_format import CHIP_SIZE
from .dlib_resnet import DlibResNetEmbedder
from .onnx_arcface import onnx_providers
from .tta import TTA_PREFIX, jitter_views, render


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


class DlibResNetOnnxEmbedder(DlibResNetEmbedder):
    """dlib's ResNet through onnxruntime: the same 150x150 chip (``crop`` is dlib's), batched.

    With ``views=1`` this is ``dlib-resnet-v1`` itself, only faster. ``views=N > 1`` averages
    the raw embeddings of N fixed perturbations of each chip (see tta.py: the chip, its mirror,
    then dlib-style jitter). That changes the embeddings and their distances, so it is another
    model, ``dlib-resnet-v1-ttaN``, with its own tag (an index never mixes them) and threshold.

    ``threads`` (default: the CPUs this process may use) is onnxruntime's intra-op pool; give 1
    per process when several worker processes embed at once. ``spin=True`` lets idle pool
    threads busy-wait (onnxruntime's default), which only pays on an otherwise idle machine.
    """

    version = "1"
    dim = 128

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        views: int = 1,
        device: str | None = None,
        threads: int | None = None,
        spin: bool = False,
    ) -> None:

        settings = settings or get_settings()
        self.views = jitter_views(views)
        self.name = "dlib-resnet-v1" if views == 1 else f"{TTA_PREFIX}{views}"
        files = {f.filename: resolve_file(f, settings) for f in get_model("dlib-resnet-v1").files}
        # What DlibResNetEmbedder.crop uses; dlib's own network is not loaded.
        self._sp5 = dlib.shape_predictor(str(files["shape_predictor_5_face_landmarks.dat"]))
        self._lock = threading.Lock()
        self.onnx_path = ensure_onnx(files[DAT_FILENAME], settings.model_cache_dir)
        self.threads = threads or max(1, _cpu_count() // max(1, settings.workers))
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        # Idle intra-op threads busy-wait for work by default: a little lower latency on an idle
        # machine, CPU burnt (and slower batches) where cores are shared with other work.
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
        providers = onnx_providers(device or settings.models.device)
        try:
            self._session = ort.InferenceSession(
                str(self.onnx_path), sess_options=options, providers=providers
            )
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise ModelError(f"cannot load {self.onnx_path}: {exc}") from exc

    def _forward(self, crops: list[np.ndarray]) -> np.ndarray:
        for crop in crops:
            if crop.shape != (CHIP_SIZE, CHIP_SIZE, 3):
                raise ValueError(
                    f"dlib face chips are {CHIP_SIZE}x{CHIP_SIZE}x3 RGB, got {crop.shape}"
                )
        n_views = len(self.views)
        batch = np.stack(
            [render(np.asarray(c, dtype=np.uint8), v) for c in crops for v in self.views]
        )
        batch = np.ascontiguousarray(batch.transpose(0, 3, 1, 2), dtype=np.float32)
        out = self._session.run([OUTPUT_NAME], {INPUT_NAME: batch})[0]
        out = out.reshape(len(crops), n_views, -1).mean(axis=1)
        return out.astype(np.float32, copy=False)
