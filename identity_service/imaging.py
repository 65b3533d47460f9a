"""Safe image input: whatever a user hands us becomes an RGB ``uint8`` array, or a typed error."""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import io
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .config import get_settings
from .errors import (
    EmptyImageError,
    FaceIDError,
    ImageError,
    ImageTooLargeError,
    UndecodableImageError,
    UnsupportedFormatError,
)

ImageInput = str | Path | bytes | bytearray | np.ndarray | Image.Image

SUPPORTED_FORMATS = frozenset({"JPEG", "PNG", "BMP", "WEBP", "TIFF", "GIF", "PPM"})
_DATA_URL = re.compile(r"^data:image/[\w.+-]+;base64,", re.IGNORECASE)
_DATA_URL_PREFIX = re.compile(r"^data:[\w/.+-]*;base64,", re.IGNORECASE)


@dataclass(frozen=True)
class EncodedImage:
    """An image file, upload or base64 text read once: its encoded bytes and their hash."""

    data: bytes
    sha256: str


@dataclass(frozen=True)
class HashedImage:
    """An image decoded once, with the content hash enrollment dedupes on."""

    array: np.ndarray
    sha256: str


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
    max_bytes, max_pixels = _limits(max_bytes, max_pixels)
    if isinstance(source, (np.ndarray, Image.Image)):
        return _from_decoded(source, max_pixels)
    data = _encoded_bytes(source, max_bytes)
    return decode_bytes(data, max_bytes=max_bytes, max_pixels=max_pixels)


def load_image_hashed(
    source: ImageInput,
    *,
    max_bytes: int | None = None,
    max_pixels: int | None = None,
) -> HashedImage:
    """:func:`load_image` and :func:`image_sha256` in one go: a file is read once."""
    max_bytes, max_pixels = _limits(max_bytes, max_pixels)
    if isinstance(source, (np.ndarray, Image.Image)):
        array = _from_decoded(source, max_pixels)
        return HashedImage(array, _pixels_sha256(array))
    data = _encoded_bytes(source, max_bytes)
    array = decode_bytes(data, max_bytes=max_bytes, max_pixels=max_pixels)
    return HashedImage(array, _bytes_sha256(data))


def read_image_bytes(
    source: str | Path | bytes | bytearray, *, max_bytes: int | None = None
) -> EncodedImage:
    """Read an encoded image once, under the byte limit, without decoding it: for callers that
    hash first and hand the bytes on to be decoded elsewhere (a pipeline's worker processes).
    ``sha256`` equals :func:`image_sha256` of the same source."""
    max_bytes, _ = _limits(max_bytes, None)
    data = _encoded_bytes(source, max_bytes)
    return EncodedImage(data, _bytes_sha256(data))


def image_sha256(source: ImageInput) -> str:
    """A content hash that identifies the photo: of the encoded bytes for files, bytes and
    base64 (what was uploaded), of the pixels for arrays and PIL images."""
    if isinstance(source, (str, Path)) and not (
        isinstance(source, str) and (_DATA_URL.match(source) or len(source) > 512)
    ):
        return _bytes_sha256(Path(source).read_bytes())
    if isinstance(source, str):
        source = base64_bytes(source)
    if isinstance(source, (bytes, bytearray)):
        return _bytes_sha256(bytes(source))
    return _pixels_sha256(load_image(source))


# Stored faces carry these hashes: changing either formula breaks dedupe of existing galleries.
def _bytes_sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _pixels_sha256(array: np.ndarray) -> str:
    digest = hashlib.sha256(str(array.shape).encode())
    digest.update(array.tobytes())
    return digest.hexdigest()


def _limits(max_bytes: int | None, max_pixels: int | None) -> tuple[int, int]:
    settings = get_settings()
    return (
        settings.max_image_bytes if max_bytes is None else max_bytes,
        settings.max_image_pixels if max_pixels is None else max_pixels,
    )


def _encoded_bytes(source: object, max_bytes: int) -> bytes:
    """The encoded bytes of a path, bytes or base64 source: a file is read once, after its size
    is checked."""
    if isinstance(source, (bytes, bytearray)):
        return bytes(source)
    if isinstance(source, Path):
        return _read_path(source, max_bytes)
    if isinstance(source, str):
        if not source:
            raise EmptyImageError("empty string given as image")
        if _DATA_URL.match(source) or (len(source) > 512 and not Path(source[:512]).suffix):
            return base64_bytes(source)
        return _read_path(Path(source), max_bytes)
    raise ImageError(f"unsupported image input type: {type(source).__name__}")


def _from_decoded(source: np.ndarray | Image.Image, max_pixels: int) -> np.ndarray:
    if isinstance(source, np.ndarray):
        return _from_array(source, max_pixels)
    return _from_pil(source, max_pixels)


def base64_bytes(text: str) -> bytes:
    """Base64 text to bytes: a ``data:...;base64,`` prefix and line breaks (the base64
    command's 76 columns, MIME) are allowed; anything else that is not base64 is an
    :class:`UndecodableImageError`."""
    payload = "".join(_DATA_URL_PREFIX.sub("", text.strip(), count=1).split())
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise UndecodableImageError(f"invalid base64 image data: {exc}") from exc


def _read_path(path: Path, max_bytes: int) -> bytes:
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
    return path.read_bytes()


def decode_bytes(data: bytes, *, max_bytes: int, max_pixels: int) -> np.ndarray:
    """Untrusted bytes to RGB. Pillow's parsers raise many exception types on malformed input
    (ValueError, SyntaxError, struct.error, ZeroDivisionError, ...): every one of them is an
    undecodable image here, never an untyped error."""
    try:
        with warnings.catch_warnings():
            # Pillow warns about odd metadata in damaged files; the outcome is what counts.
            warnings.simplefilter("ignore", UserWarning)
            return _decode(data, max_bytes, max_pixels)
    except FaceIDError:
        raise
    except MemoryError as exc:
        raise ImageTooLargeError(f"image needs more memory than there is to decode: {exc}") from exc
    except Exception as exc:  # any parser failure on untrusted data
        raise UndecodableImageError(
            f"image data is malformed ({type(exc).__name__}: {str(exc)[:200]})"
        ) from exc


def _decode(data: bytes, max_bytes: int, max_pixels: int) -> np.ndarray:
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
