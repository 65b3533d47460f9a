from __future__ import annotations

import base64
import hashlib
import io

import numpy as np
import pytest
from opened_files import count_opens
from PIL import Image

from identity_service.errors import (
    EmptyImageError,
    ImageError,
    ImageTooLargeError,
    UndecodableImageError,
    UnsupportedFormatError,
)
from identity_service.imaging import (
    image_sha256,
    load_image,
    load_image_hashed,
    read_image_bytes,
)


def _jpeg(array: np.ndarray, **save) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="JPEG", **save)
    return buf.getvalue()


def test_every_input_kind_gives_the_same_rgb(lfw_image, tmp_path):
    path = lfw_image("Abel_Pacheco", 1)
    data = path.read_bytes()
    ref = load_image(path)
    assert ref.shape == (250, 250, 3) and ref.dtype == np.uint8
    assert np.array_equal(load_image(str(path)), ref)
    assert np.array_equal(load_image(data), ref)
    assert np.array_equal(load_image(base64.b64encode(data).decode()), ref)
    assert np.array_equal(
        load_image("data:image/jpeg;base64," + base64.b64encode(data).decode()), ref
    )
    assert np.array_equal(load_image(Image.open(path)), ref)
    assert np.array_equal(load_image(ref), ref)


def test_grey_and_rgba_arrays_become_rgb():
    grey = np.full((10, 12), 7, np.uint8)
    assert load_image(grey).shape == (10, 12, 3)
    rgba = np.zeros((10, 12, 4), np.uint8)
    assert load_image(rgba).shape == (10, 12, 3)
    assert load_image(np.ones((4, 4, 3), np.float32)).max() == 255


def test_exif_orientation_is_applied():
    array = np.zeros((40, 80, 3), np.uint8)
    array[:, :40] = 255  # left half white
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise for display
    out = load_image(_jpeg(array, exif=exif.tobytes()))
    assert out.shape[:2] == (80, 40)
    assert out[:40].mean() > 200 and out[40:].mean() < 50  # white half now on top


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"", EmptyImageError),
        (b"this is not an image at all" * 10, UndecodableImageError),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, UndecodableImageError),
    ],
)
def test_bad_bytes_raise_typed_errors(data, error):
    with pytest.raises(error):
        load_image(data)


def test_truncated_jpeg_is_undecodable(lfw_image):
    data = lfw_image("Abel_Pacheco", 1).read_bytes()
    with pytest.raises(UndecodableImageError, match="corrupt or truncated"):
        load_image(data[: len(data) // 2])


def test_unsupported_format():
    buf = io.BytesIO()
    Image.new("RGB", (16, 16)).save(buf, format="ICO")
    with pytest.raises(UnsupportedFormatError, match="ICO"):
        load_image(buf.getvalue())


def test_decompression_bomb_refused_before_decoding():
    buf = io.BytesIO()
    Image.new("1", (20_000, 20_000)).save(buf, format="PNG")  # 400 Mpx in a few KB
    assert len(buf.getvalue()) < 200_000
    with pytest.raises(ImageTooLargeError, match="pixels"):
        load_image(buf.getvalue())


def test_byte_limit():
    data = _jpeg(np.zeros((64, 64, 3), np.uint8))
    with pytest.raises(ImageTooLargeError, match="bytes"):
        load_image(data, max_bytes=100)


def test_missing_path_and_bad_base64_and_bad_types(tmp_path):
    with pytest.raises(ImageError, match="not found"):
        load_image(tmp_path / "missing.jpg")
    with pytest.raises(UndecodableImageError, match="base64"):
        load_image("data:image/png;base64,@@@@")
    with pytest.raises(ImageError, match="unsupported image input type"):
        load_image(12345)  # type: ignore[arg-type]
    with pytest.raises(EmptyImageError):
        load_image(np.zeros((0, 5, 3), np.uint8))
    with pytest.raises(ImageError, match="shape"):
        load_image(np.zeros((5, 5, 2), np.uint8))


def test_sixteen_bit_grey_png_keeps_its_contrast():
    ramp = (np.arange(64 * 64, dtype=np.uint32).reshape(64, 64) * 16).astype(np.uint16)
    buf = io.BytesIO()
    Image.fromarray(ramp).save(buf, format="PNG")
    out = load_image(buf.getvalue())
    assert out.shape == (64, 64, 3) and out.dtype == np.uint8
    assert out[0, 0, 0] < 5 and out[-1, -1, 0] > 240  # a ramp, not clipped to white


def test_hashed_load_reads_a_file_once_and_keeps_the_stored_hashes(
    lfw_image, tmp_path, monkeypatch
):
    path = lfw_image("Abel_Pacheco", 1)
    data = path.read_bytes()
    b64 = base64.b64encode(data).decode()
    ref = load_image(path)
    pixels = hashlib.sha256(str(ref.shape).encode() + ref.tobytes()).hexdigest()
    # The formulas stored faces were hashed with: the encoded bytes, else shape + pixels.
    expected = {
        "path": (path, hashlib.sha256(data).hexdigest()),
        "str path": (str(path), hashlib.sha256(data).hexdigest()),
        "bytes": (data, hashlib.sha256(data).hexdigest()),
        "bytearray": (bytearray(data), hashlib.sha256(data).hexdigest()),
        "base64": (b64, hashlib.sha256(data).hexdigest()),
        "data url": ("data:image/jpeg;base64," + b64, hashlib.sha256(data).hexdigest()),
        "array": (ref, pixels),
        "pil": (Image.open(path), pixels),
    }
    for kind, (source, sha) in expected.items():
        assert image_sha256(source) == sha, kind
        opened = count_opens(monkeypatch)
        loaded = load_image_hashed(source)
        monkeypatch.undo()
        assert loaded.sha256 == sha, kind
        assert np.array_equal(loaded.array, ref), kind
        assert sum(opened.values()) == (1 if "path" in kind else 0), (kind, opened)


def test_hashed_load_keeps_the_limits_and_errors(tmp_path):
    small = _jpeg(np.zeros((64, 64, 3), np.uint8))
    with pytest.raises(ImageTooLargeError, match="bytes"):
        load_image_hashed(small, max_bytes=100)
    with pytest.raises(ImageError, match="not found"):
        load_image_hashed(tmp_path / "missing.jpg")
    with pytest.raises(UndecodableImageError):
        load_image_hashed(b"garbage")
    with pytest.raises(EmptyImageError):
        load_image_hashed(b"")


def test_read_image_bytes_reads_once_and_checks_the_size_first(tmp_path, monkeypatch):
    path = tmp_path / "face.jpg"
    path.write_bytes(_jpeg(np.zeros((64, 64, 3), np.uint8)))
    opened = count_opens(monkeypatch)
    read = read_image_bytes(path)
    assert opened[str(path)] == 1
    assert read.data == path.read_bytes() and read.sha256 == image_sha256(path)
    opened.clear()
    with pytest.raises(ImageTooLargeError, match="bytes"):
        read_image_bytes(path, max_bytes=100)
    assert opened[str(path)] == 0  # refused from its size, never read
