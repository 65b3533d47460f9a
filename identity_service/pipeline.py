"""FacePipeline: image -> detect -> align -> embed, and verify two images.

The one place that strings the models together; the service layer, the CLI, the workers and the
evaluation all call it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np

from .attributes import analyze_image
from .config import Settings, get_settings
from .detect import Detector, create_detector, order_faces
from .embed import Embedder, create_embedder
from .errors import FaceIDError, NoFaceError, NoThresholdError
from .imaging import ImageInput, load_image
from .models import MODELS, default_threshold
from .types import Detection, ExtractedFace, Face, Verification

__all__ = ["ExtractedFace", "FacePipeline"]


class FacePipeline:
    """Detect, align and embed faces.

    ``FacePipeline()`` is the offline default: dlib HOG + dlib 5/68-point + dlib ResNet-128.
    Faces of one image come in a documented order: nearest the image centre first.
    Embeddings are L2-normalised; distances are cosine distances (``1 - cos``).
    """

    def __init__(
        self,
        detector: str | Detector | None = None,
        embedder: str | Embedder | None = None,
        *,
        device: str | None = None,
        workers: int | None = None,
        threshold: float | None = None,
        settings: Settings | None = None,
        threshold_provider: Callable[[str], Any] | None = None,
    ) -> None:
        settings = settings or get_settings()
        if device is not None:
            models = settings.models.model_copy(update={"device": device})
            settings = settings.model_copy(update={"models": models})
        self.settings = settings
        self.embedder = (
            embedder
            if isinstance(embedder, Embedder)
            else create_embedder(embedder or settings.models.embedder, settings)
        )
        # A model whose crop is defined on one detector's landmarks names it in the registry.
        spec = MODELS.get(self.embedder.name)
        self.detector = (
            detector
            if isinstance(detector, Detector)
            else create_detector(
                detector or (spec.detector if spec else None) or settings.models.detector, settings
            )
        )
        self.workers = workers or settings.workers
        self._threshold = threshold
        # Called with the model tag when no threshold was given: returns None or a calibration
        # in force (``.threshold``, ``.source``, ``.confidence(distance)``), e.g. FaceService's.
        self.threshold_provider = threshold_provider
        self._pool: ProcessPoolExecutor | None = None

    def with_embedder(self, embedder: str) -> FacePipeline:
        """A pipeline on these settings and workers that embeds with ``embedder`` (and that
        embedder's own detector)."""
        return FacePipeline(embedder=embedder, settings=self.settings, workers=self.workers)

    # -- threshold ---------------------------------------------------------------------------
    @property
    def model(self) -> str:
        return self.embedder.tag

    def threshold(self) -> tuple[float, str]:
        """The cosine-distance threshold in force and where it came from."""
        threshold, source, _ = self._threshold_in_force()
        return threshold, source

    def _threshold_in_force(self) -> tuple[float, str, Any]:
        if self._threshold is not None:
            return self._threshold, "given to FacePipeline", None
        if self.threshold_provider is not None:
            calibrated = self.threshold_provider(self.model)
            if calibrated is not None:
                return calibrated.threshold, calibrated.source, calibrated
        threshold, source = self._default_threshold()
        return threshold, source, None

    def _default_threshold(self) -> tuple[float, str]:
        default = default_threshold(self.embedder.name, self.settings)
        if default is not None:
            return default.value, default.source
        raise NoThresholdError(
            f"no threshold known for model {self.model}; pass threshold= or calibrate one"
        )

    # -- single image --------------------------------------------------------------------------
    def detect(self, image: ImageInput) -> list[Detection]:
        array = load_image(image)
        return order_faces(self.detector.detect(array), array.shape)

    def extract_faces(self, image: ImageInput, max_faces: int | None = None) -> list[ExtractedFace]:
        """Detected faces, aligned for the embedder, centre-most first. May be empty."""
        array = load_image(image)
        detections = order_faces(self.detector.detect(array), array.shape)[:max_faces]
        return [
            ExtractedFace(i, det, self.embedder.crop(array, det))
            for i, det in enumerate(detections)
        ]

    def represent(self, image: ImageInput, max_faces: int | None = None) -> list[Face]:
        """Every face in the image with its embedding; :class:`NoFaceError` if there is none."""
        faces = self._embed_extracted([self.extract_faces(image, max_faces)])[0]
        if not faces:
            raise NoFaceError("no face found in the image")
        return faces

    def represent_detections(self, image: ImageInput, detections: list[Detection]) -> list[Face]:
        """Embed faces at known places (boxes and landmarks from elsewhere), in the given order."""
        array = load_image(image)
        extracted = [
            ExtractedFace(i, det, self.embedder.crop(array, det))
            for i, det in enumerate(detections)
        ]
        return self._embed_extracted([extracted])[0]

    def _embed_extracted(self, per_image: Sequence[Sequence[ExtractedFace]]) -> list[list[Face]]:
        crops = [f.crop for faces in per_image for f in faces]
        vectors = self.embedder.embed_crops(crops)
        out: list[list[Face]] = []
        pos = 0
        for faces in per_image:
            row = []
            for extracted in faces:
                det = extracted.detection
                row.append(
                    Face(
                        index=extracted.index,
                        box=det.box,
                        landmarks=det.landmarks,
                        score=det.score,
                        embedding=vectors[pos],
                        model=self.model,
                        detector=det.detector,
                    )
                )
                pos += 1
            out.append(row)
        return out

    # -- many images ---------------------------------------------------------------------------
    def represent_batch(
        self, images: Iterable[ImageInput], max_faces: int | None = None, chunk: int = 16
    ) -> list[list[Face] | FaceIDError]:
        """Represent many images; each entry is its faces or the typed error it raised.

        Crops of a chunk of images are embedded as one batch; with ``workers > 1`` chunks run in
        that many processes (models loaded once per process). Nothing is dropped: an image with
        no face yields a :class:`NoFaceError` in its place.
        """
        items = list(images)
        chunks = [items[i : i + chunk] for i in range(0, len(items), chunk)]
        if self.workers > 1 and len(chunks) > 1:
            pool = self._get_pool()
            results = pool.map(_worker_represent, [(c, max_faces) for c in chunks])
        else:
            results = (self._represent_chunk(c, max_faces) for c in chunks)
        return [r for part in results for r in part]

    def _represent_chunk(
        self, images: Sequence[ImageInput], max_faces: int | None
    ) -> list[list[Face] | FaceIDError]:
        extracted: list[list[ExtractedFace] | FaceIDError] = []
        for image in images:
            try:
                faces = self.extract_faces(image, max_faces)
                extracted.append(faces if faces else NoFaceError("no face found in the image"))
            except FaceIDError as exc:
                extracted.append(exc)
        ok = [e for e in extracted if not isinstance(e, FaceIDError)]
        embedded = iter(self._embed_extracted(ok))
        return [e if isinstance(e, FaceIDError) else next(embedded) for e in extracted]

    def _get_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            import multiprocessing

            # fork, not spawn: spawn re-imports the caller's __main__, which breaks any user
            # script without a main guard. Each child builds its own models (initializer), so
            # nothing half-initialised is shared with the parent.
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=multiprocessing.get_context("fork"),
                initializer=_worker_init,
                initargs=(self.detector.name, self.embedder.name, self.settings),
            )
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def __enter__(self) -> FacePipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- attributes ----------------------------------------------------------------------------
    def analyze(
        self,
        image: ImageInput,
        actions: Sequence[str] = ("age", "gender", "emotion", "race"),
        max_faces: int | None = None,
    ) -> list[Any]:
        """Age, gender, emotion and race of every face (``Analysis`` each, centre-most first).

        See :mod:`identity_service.attributes`; for many images use its ``analyze_images``.
        """
        return analyze_image(self, image, actions, max_faces=max_faces)

    # -- verify --------------------------------------------------------------------------------
    def verify(self, image1: ImageInput, image2: ImageInput) -> Verification:
        """Same person? Uses the centre-most face of each image."""
        timings: dict[str, float] = {}
        start = time.perf_counter()
        arrays = [load_image(image1), load_image(image2)]
        timings["decode"] = _ms_since(start)
        t = time.perf_counter()
        extracted = []
        for which, array in enumerate(arrays, start=1):
            faces = self.extract_faces(array, max_faces=1)
            if not faces:
                raise NoFaceError(f"no face found in image {which}", image=which)
            extracted.append(faces)
        timings["detect_align"] = _ms_since(t)
        t = time.perf_counter()
        face1, face2 = (faces[0] for faces in self._embed_extracted(extracted))
        timings["embed"] = _ms_since(t)
        similarity = float(np.dot(face1.embedding, face2.embedding))
        distance = 1.0 - similarity
        threshold, source, calibrated = self._threshold_in_force()
        timings["total"] = _ms_since(start)
        return Verification(
            verified=distance <= threshold,
            distance=distance,
            threshold=threshold,
            model=self.model,
            similarity=similarity,
            faces=(face1, face2),
            timings_ms=timings,
            threshold_source=source,
            confidence=None if calibrated is None else calibrated.confidence(distance),
        )


def _ms_since(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0


_WORKER: FacePipeline | None = None


def _worker_init(detector: str, embedder: str, settings: Settings) -> None:
    global _WORKER
    _WORKER = FacePipeline(detector, embedder, settings=settings, workers=1)


def _worker_represent(
    args: tuple[Sequence[ImageInput], int | None],
) -> list[list[Face] | FaceIDError]:
    assert _WORKER is not None, "worker process not initialised"
    images, max_faces = args
    return _WORKER._represent_chunk(images, max_faces)
