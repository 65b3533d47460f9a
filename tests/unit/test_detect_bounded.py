"""Detection on a bounded working size: the detector never scans more than the working size,
and faces found there map back onto the full photo."""

from __future__ import annotations

import cv2
import numpy as np

from identity_service import FacePipeline, Settings
from identity_service.detect import BoundedDetector, create_detector
from identity_service.detect.base import Detector
from identity_service.imaging import load_image


class Spy(Detector):
    name = "spy"

    def __init__(self, inner: Detector) -> None:
        self.inner, self.shapes = inner, []

    def detect(self, image):
        self.shapes.append(image.shape)
        return self.inner.detect(image)


def test_a_large_photo_is_scanned_at_the_working_size_and_faces_map_back(lfw_image):
    face = load_image(lfw_image("Abel_Pacheco", 1))
    big = cv2.resize(face, (4000, 4000), interpolation=cv2.INTER_CUBIC)
    full = create_detector("yunet", Settings(detect_max_side=0))
    spy = Spy(full)
    bounded = BoundedDetector(spy, 1000)
    (small,) = bounded.detect(big)
    assert spy.shapes == [(1000, 1000, 3)]
    # The same face as found in the original 250x250 photo, scaled to the big one's pixels.
    (reference,) = full.detect(face)
    factor = 4000 / 250
    expected = np.array([reference.box.x1, reference.box.y1, reference.box.x2, reference.box.y2])
    got = np.array([small.box.x1, small.box.y1, small.box.x2, small.box.y2])
    assert np.abs(got - expected * factor).max() < 0.05 * 4000
    assert np.abs(small.landmarks - reference.landmarks * factor).max() < 0.05 * 4000
    assert bounded.detect(face) and spy.shapes[-1] == face.shape  # small photos untouched


def test_the_pipeline_embeds_a_large_photo_from_its_full_size_crop(lfw_image):
    face = load_image(lfw_image("Abel_Pacheco", 1))
    big = cv2.resize(face, (5000, 5000), interpolation=cv2.INTER_CUBIC)
    pipeline = FacePipeline(embedder="dlib-resnet-v1", settings=Settings(detect_max_side=1024))
    assert isinstance(pipeline.detector, BoundedDetector)
    a = pipeline.represent(face)[0].embedding
    b = pipeline.represent(big)[0].embedding
    assert float(a @ b) > 0.97  # the same face, found at 1024 px and cut at 5000
