"""Safe image input: whatever a user hands us becomes an RGB ``uint8`` array, or a typed error."""

from __future__ import annotations

import base64
import binascii
import contextlib
import io
import re
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .config import get_settings
from .errors import (
    EmptyImageError,
    ImageError,
    ImageTooLargeError,
    UndecodableImageError,
    UnsupportedFormatError,
)

ImageInput = str | Path | bytes | bytearray | np.ndarray | Image.Image

SUPPORTED_FORMATS = frozenset({"JPEG", "PNG", "BMP", "WEBP", "TIFF", "GIF", "PPM"})
_DATA_URL = re.compile(r"^data:image/[\w.+-]+;base64,", re.IGNORECASE)


def load_image(
    source: ImageInput,
    *,
    max_bytes: int | None = None,
    max_pixels: int | None = None,
) -> np.ndarray:
    """Decode ``source`` into an ``(H, W, 3)`` RGB uint8 array.

    Accepts a file path, raw bytes, a base64 string (optionally a ``data:`` URL), a numpy array
    (``HxW`` grey, ``HxWx3`` RGB or ``HxWx4`` RGBA) or a PIL image. EXIF orientation is applied.
    """
    settings = get_settings()
    max_bytes = settings.max_image_bytes if max_bytes is None else max_bytes
    max_pixels = settings.max_image_pixels if max_pixels is None else max_pixels

    if isinstance(source, np.ndarray):
        return _from_array(source, max_pixels)
    if isinstance(source, Image.Image):
        return _from_pil(source, max_pixels)
    if isinstance(source, (bytes, bytearray)):
        return decode_bytes(bytes(source), max_bytes=max_bytes, max_pixels=max_pixels)
    if isinstance(source, Path):
        return _from_path(source, max_bytes, max_pixels)
    if isinstance(source, str):
        if not source:
            raise EmptyImageError("empty string given as image")
        if _DATA_URL.match(source) or (len(source) > 512 and not Path(source[:512]).suffix):
            return decode_bytes(_b64decode(source), max_bytes=max_bytes, max_pixels=max_pixels)
        return _from_path(Path(source), max_bytes, max_pixels)
    raise ImageError(f"unsupported image input type: {type(source).__name__}")


def image_sha256(source: ImageInput) -> str:
    """A content hash that identifies the photo: of the encoded bytes for files, bytes and
    base64 (what was uploaded), of the pixels for arrays and PIL images."""
    import hashlib

    if isinstance(source, (str, Path)) and not (
        isinstance(source, str) and (_DATA_URL.match(source) or len(source) > 512)
    ):
        return hashlib.sha256(Path(source).read_bytes()).hexdigest()
    if isinstance(source, str):
        source = _b64decode(source)
    if isinstance(source, (bytes, bytearray)):
        return hashlib.sha256(bytes(source)).hexdigest()
    array = load_image(source)
    digest = hashlib.sha256(str(array.shape).encode())
    digest.update(array.tobytes())
    return digest.hexdigest()


def _b64decode(text: str) -> bytes:
    payload = _DATA_URL.sub("", text.strip(), count=1)
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise UndecodableImageError(f"invalid base64 image data: {exc}") from exc


def _from_path(path: Path, max_bytes: int, max_pixels: int) -> np.ndarray:
    if not path.exists():
        raise ImageError(f"image file not found: {path}", path=str(path))
    if not path.is_file():
        raise ImageError(f"not a file: {path}", path=str(path))
    size = path.stat().st_size
    if size > max_bytes:
        raise ImageTooLargeError(
            f"image file {path} is {size} bytes, more than the limit of {max_bytes}",
            bytes=size,
            limit=max_bytes,
        )
    return decode_bytes(path.read_bytes(), max_bytes=max_bytes, max_pixels=max_pixels)


def decode_bytes(data: bytes, *, max_bytes: int, max_pixels: int) -> np.ndarray:
    if not data:
        raise EmptyImageError("image data is empty")
    if len(data) > max_bytes:
        raise ImageTooLargeError(
            f"image is {len(data)} bytes, more than the limit of {max_bytes}",
            bytes=len(data),
            limit=max_bytes,
        )
    try:
        with warnings.catch_warnings():
            # Pillow warns (then errors at 2x) on huge images; we check our own limit below.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            fmt = image.format
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(f"image has too many pixels: {exc}") from exc
    except UnidentifiedImageError as exc:
        raise UndecodableImageError(
            f"data is not an image in any supported format ({', '.join(sorted(SUPPORTED_FORMATS))})"
        ) from exc
    except OSError as exc:
        raise UndecodableImageError(f"cannot read image: {exc}") from exc
    if fmt not in SUPPORTED_FORMATS:
        raise UnsupportedFormatError(
            f"image format {fmt} is not supported; "
            f"use one of {', '.join(sorted(SUPPORTED_FORMATS))}",
            format=fmt,
        )
    # The header gives the size before any pixel is decoded: refuse bombs here.
    _check_pixels(image.width, image.height, max_pixels)
    try:
        image.load()
    except (OSError, SyntaxError, ValueError) as exc:
        raise UndecodableImageError(f"image data is corrupt or truncated: {exc}") from exc
    return _from_pil(image, max_pixels)


def _check_pixels(width: int, height: int, max_pixels: int) -> None:
    if width <= 0 or height <= 0:
        raise EmptyImageError(f"image has no pixels ({width}x{height})")
    if width * height > max_pixels:
        raise ImageTooLargeError(
            f"image is {width}x{height} = {width * height} pixels, more than the limit of "
            f"{max_pixels}",
            pixels=width * height,
            limit=max_pixels,
        )


def _from_pil(image: Image.Image, max_pixels: int) -> np.ndarray:
    _check_pixels(image.width, image.height, max_pixels)
    # A broken EXIF block must not lose the image: keep the stored orientation then.
    with contextlib.suppress(OSError, SyntaxError, ValueError, TypeError):
        image = ImageOps.exif_transpose(image)
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        # 16-bit and float greys: Pillow's convert() clips them to white, so scale by hand.
        grey = np.asarray(image, dtype=np.float64)
        top = grey.max(initial=0)
        scale = 255.0 / (65535.0 if top > 255 else 255.0) if top > 1 else 255.0
        grey = np.clip(grey * scale, 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.stack([grey] * 3, axis=-1))
    if image.mode != "RGB":
        image = image.convert("RGB")
    return np.ascontiguousarray(np.asarray(image, dtype=np.uint8))


def _from_array(array: np.ndarray, max_pixels: int) -> np.ndarray:
    if array.size == 0:
        raise EmptyImageError("image array is empty")
    if array.ndim == 2:
        array = np.stack([array] * 3, axis=-1)
    if array.ndim != 3 or array.shape[2] not in (3, 4):
        raise ImageError(f"image array must be HxW, HxWx3 or HxWx4, got shape {array.shape}")
    _check_pixels(array.shape[1], array.shape[0], max_pixels)
    if array.dtype != np.uint8:
        if np.issubdtype(array.dtype, np.floating) and array.max(initial=0) <= 1.0:
            array = array * 255.0
        array = np.clip(array, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(array[:, :, :3])
