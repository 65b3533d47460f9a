"""What every enrollment path (``FaceService.enroll``, folder import, enrollment jobs) does with
one image's pipeline outcome: take the face to store, or say why there is none."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from ..errors import FaceIDError, ManyFacesError
from ..store import NewFace
from ..types import Face
from .results import ImageFailure

ManyFaces = Literal["centre", "error"]


@dataclass(frozen=True)
class FacePick:
    """The face taken from one image, or the failure to report in its place."""

    face: Face | None
    failure: ImageFailure | None = None
    multi_face: bool = False  # the image had several faces; the centre-most was taken


def pick_face(
    outcome: list[Face] | FaceIDError, label: str, many_faces: ManyFaces = "centre"
) -> FacePick:
    """Face 0 (the centre-most) of a ``represent_batch`` outcome; an error outcome, or several
    faces with ``many_faces="error"``, becomes a failure labelled ``label``."""
    if isinstance(outcome, FaceIDError):
        return FacePick(None, ImageFailure(label[:200], outcome.code, outcome.message))
    if len(outcome) > 1 and many_faces == "error":
        err = ManyFacesError(f"{len(outcome)} faces found where one was required")
        return FacePick(None, ImageFailure(label[:200], err.code, err.message))
    return FacePick(outcome[0], multi_face=len(outcome) > 1)


def new_face(face: Face, image_sha256: str) -> NewFace:
    """The row to store for a face of the photo whose content hash is ``image_sha256``."""
    return NewFace(
        image_sha256=image_sha256,
        face_index=face.index,
        box=face.box.to_list(),
        landmarks=np.round(face.landmarks, 2).tolist(),
        det_score=float(face.score),
        quality=None,
        embedding=face.embedding.astype(np.float32),
        model=face.model,
    )
