from __future__ import annotations

import numpy as np
import pytest

from identity_service.detect import create_detector, order_faces
from identity_service.errors import UnknownModelError
from identity_service.imaging import load_image

PEOPLE = [("Abel_Pacheco", 1), ("Akhmed_Zakayev", 1), ("Abdullah_Gul", 3), ("Adam_Sandler", 1)]


@pytest.fixture(scope="module", params=["dlib-hog", "yunet"])
def detector(request):
    return create_detector(request.param)


def test_finds_the_central_face_in_real_lfw_images(detector, lfw_image):
    for name, number in PEOPLE:
        image = load_image(lfw_image(name, number))
        faces = order_faces(detector.detect(image), image.shape)
        assert faces, f"{detector.name} found no face in {name}"
        cx, cy = faces[0].box.center
        assert abs(cx - 125) < 30 and abs(cy - 125) < 40
        assert faces[0].landmarks.shape == (5, 2)
        left_eye, right_eye, nose, mouth_l, mouth_r = faces[0].landmarks
        assert left_eye[0] < right_eye[0] and mouth_l[0] < mouth_r[0]
        assert max(left_eye[1], right_eye[1]) < nose[1] < min(mouth_l[1], mouth_r[1])


def test_multi_face_image_gives_every_face_centre_first(detector, lfw_image):
    tiles = [load_image(lfw_image(n, k)) for n, k in PEOPLE]
    mosaic = np.zeros((500, 500, 3), np.uint8)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, 2)
        mosaic[r * 250 : (r + 1) * 250, c * 250 : (c + 1) * 250] = tile
    faces = order_faces(detector.detect(mosaic), mosaic.shape)
    centres = sorted((int(f.box.center[1] // 250), int(f.box.center[0] // 250)) for f in faces)
    assert centres == [(0, 0), (0, 1), (1, 0), (1, 1)], centres
    # documented order: nearest the image centre first
    dists = [np.hypot(f.box.center[0] - 250, f.box.center[1] - 250) for f in faces]
    assert dists == sorted(dists)


def test_blank_image_has_no_face(detector):
    assert detector.detect(np.full((200, 200, 3), 128, np.uint8)) == []


def test_unknown_detector_name():
    with pytest.raises(UnknownModelError, match="dlib-hog"):
        create_detector("mtcnn-please")
