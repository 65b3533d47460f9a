"""Face alignment: a 5-point similarity transform onto a template, and dlib's face chip."""

from __future__ import annotations

import cv2
import dlib
import numpy as np

# insightface's ArcFace template for a 112x112 crop, in LANDMARK_NAMES order.
ARCFACE_TEMPLATE_112 = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float32,
)


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation) mapping src onto dst.

    Umeyama's closed form; returns the 2x3 matrix for ``cv2.warpAffine``.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or len(src) < 2:
        raise ValueError(f"need matching (N>=2, 2) point sets, got {src.shape} and {dst.shape}")
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    cov = dst_c.T @ src_c / len(src)
    u, s, vt = np.linalg.svd(cov)
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[-1] = -1  # keep a rotation, never a reflection
    rotation = u @ np.diag(d) @ vt
    src_var = (src_c**2).sum() / len(src)
    scale = float((s * d).sum() / src_var) if src_var > 0 else 1.0
    translation = dst_mean - scale * rotation @ src_mean
    return np.hstack([scale * rotation, translation[:, None]]).astype(np.float32)


def apply_transform(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    points = np.asarray(points, dtype=np.float32)
    return points @ matrix[:, :2].T + matrix[:, 2]


def align_to_template(
    image: np.ndarray,
    landmarks: np.ndarray,
    template: np.ndarray = ARCFACE_TEMPLATE_112,
    size: tuple[int, int] = (112, 112),
) -> np.ndarray:
    """Warp ``image`` so the 5 landmarks land on ``template`` (default: ArcFace 112x112)."""
    matrix = similarity_transform(landmarks, template)
    return cv2.warpAffine(image, matrix, size, flags=cv2.INTER_LINEAR, borderValue=0)


def arcface_crop(image: np.ndarray, landmarks: np.ndarray, size: int = 112) -> np.ndarray:
    template = ARCFACE_TEMPLATE_112 * (size / 112.0)
    return align_to_template(image, landmarks, template, (size, size))


def dlib_chip(
    image: np.ndarray,
    box: tuple[float, float, float, float],
    shape5: np.ndarray,
    size: int = 150,
    padding: float = 0.25,
) -> np.ndarray:
    """dlib's own face chip (what its ResNet was trained on) from its 5-point shape."""

    rect = dlib.rectangle(*(round(v) for v in box))
    parts = [dlib.point(round(x), round(y)) for x, y in shape5]
    shape = dlib.full_object_detection(rect, parts)
    return np.asarray(dlib.get_face_chip(image, shape, size=size, padding=padding))


def shape_to_array(shape) -> np.ndarray:
    """A dlib ``full_object_detection`` -> its points as an ``(n, 2)`` float32 array."""
    return np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float32)
