from __future__ import annotations

import numpy as np

from identity_service.align import (
    ARCFACE_TEMPLATE_112,
    apply_transform,
    arcface_crop,
    similarity_transform,
)


def test_similarity_transform_recovers_a_known_transform():
    angle, scale, shift = np.deg2rad(17), 1.7, np.array([12.0, -5.0])
    rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    src = np.random.default_rng(0).uniform(0, 100, (5, 2))
    dst = src @ rot.T + shift
    matrix = similarity_transform(src, dst)
    assert np.allclose(matrix[:, :2], rot, atol=1e-4)
    assert np.allclose(matrix[:, 2], shift, atol=1e-3)


def test_never_reflects():
    src = np.array([[0, 0], [1, 0], [0, 1]], float)
    dst = src * [-1, 1]  # a mirror image
    m = similarity_transform(src, dst)
    assert np.linalg.det(m[:, :2]) > 0


def test_real_faces_land_on_the_arcface_template(pipeline, lfw_image):
    """Detected landmarks, mapped by the alignment, land on the 112x112 template: eyes within
    4 px, every point within 8 px (a real face, turned a little, is not exactly the template's
    shape, so the least-squares fit leaves a residual, mostly at the nose)."""
    for name, number in [("Abel_Pacheco", 1), ("Akhmed_Zakayev", 1), ("Abdullah_Gul", 3)]:
        det = pipeline.detect(lfw_image(name, number))[0]
        matrix = similarity_transform(det.landmarks, ARCFACE_TEMPLATE_112)
        mapped = apply_transform(matrix, det.landmarks)
        err = np.linalg.norm(mapped - ARCFACE_TEMPLATE_112, axis=1)
        assert err[:2].max() < 4.0 and err.max() < 8.0, (name, err)


def test_crop_shape_and_content(pipeline, lfw_image):
    from identity_service.imaging import load_image

    image = load_image(lfw_image("Abel_Pacheco", 1))
    det = pipeline.detect(image)[0]
    crop = arcface_crop(image, det.landmarks)
    assert crop.shape == (112, 112, 3)
    assert crop.std() > 20  # a face, not a border fill
