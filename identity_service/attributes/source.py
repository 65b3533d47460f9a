"""What analysis needs of a pipeline: :class:`identity_service.pipeline.FacePipeline` has it.

The pipeline sits above the attribute models (``FacePipeline.analyze`` runs them), so they take
it as this protocol rather than import it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from ..config import Settings
from ..detect.base import Detector
from ..embed.base import Embedder
from ..imaging import ImageInput
from ..types import ExtractedFace, Face


class FaceSource(Protocol):
    settings: Settings
    detector: Detector
    embedder: Embedder
    workers: int

    @property
    def model(self) -> str:
        """The embedder's tag."""
        ...

    def extract_faces(
        self, image: ImageInput, max_faces: int | None = None
    ) -> list[ExtractedFace]: ...

    def _embed_extracted(
        self, per_image: Sequence[Sequence[ExtractedFace]]
    ) -> list[list[Face]]: ...

    def with_embedder(self, embedder: str) -> FaceSource:
        """A pipeline on the same settings and workers that embeds with ``embedder``."""
        ...
