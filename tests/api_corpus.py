"""Bad inputs for the HTTP API, each with the status and error code it must get (never a 5xx).

Shared by the unit tests (TestClient) and the end-to-end tests (a real server)."""

from __future__ import annotations

import base64
import io
import os
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image


@dataclass
class Bad:
    name: str
    status: int
    code: str
    files: dict[str, Any] | None = None  # multipart files
    data: dict[str, str] | None = None  # multipart fields
    json: Any = None
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    path: str = "/v1/collections/{c}/find"
    method: str = "POST"

    def send(self, http: Any, collection: str) -> Any:
        kwargs: dict[str, Any] = {"headers": self.headers}
        for key in ("files", "data", "json", "content"):
            value = getattr(self, key)
            if key == "data" and value is not None:
                value = {k: v.replace("{c}", collection) for k, v in value.items()}
            if value is not None:
                kwargs[key] = value
        return http.request(self.method, self.path.replace("{c}", collection), **kwargs)


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return (
        struct.pack(">I", len(payload))
        + kind
        + payload
        + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)
    )


def declared_png(width: int, height: int) -> bytes:
    """A PNG whose header declares ``width x height`` with almost no pixel data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 64)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


def png_bomb(side: int = 7000) -> bytes:
    """A real, small PNG that decodes to side*side pixels (49 MP by default)."""
    buf = io.BytesIO()
    Image.new("L", (side, side)).save(buf, "PNG", optimize=False, compress_level=9)
    return buf.getvalue()


def encode(image: Image.Image, fmt: str, **kw: Any) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **kw)
    return buf.getvalue()


def corpus(face_jpeg: Path) -> list[Bad]:
    jpeg = face_jpeg.read_bytes()
    face = Image.open(face_jpeg)
    b64 = base64.b64encode(jpeg).decode()
    rng = np.random.default_rng(0)

    def f(name: str, payload: bytes, status: int, code: str) -> Bad:
        return Bad(name, status, code, files={"image": ("x", payload, "application/octet-stream")})

    frames = [face, face.rotate(15)]
    return [
        f("random bytes", os.urandom(4096), 400, "undecodable_image"),
        f("truncated jpeg", jpeg[: len(jpeg) // 2], 400, "undecodable_image"),
        f("zero bytes", b"", 400, "empty_image"),
        f("text", b"hello, this is not an image\n" * 10, 400, "undecodable_image"),
        f("html", b"<html><body>nope</body></html>", 400, "undecodable_image"),
        f("huge declared png", declared_png(100_000, 100_000), 413, "image_too_large"),
        f("png bomb", png_bomb(), 413, "image_too_large"),
        f("zero-width png", declared_png(0, 10), 400, "undecodable_image"),
        f("pdf", b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n", 400, "undecodable_image"),
        f("heic", b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00heicmif1", 400, "undecodable_image"),
        f(
            "noise image, no face",
            encode(Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)), "PNG"),
            422,
            "no_face",
        ),
        f("1x1 png", encode(Image.new("RGB", (1, 1)), "PNG"), 422, "no_face"),
        f(
            "16-bit png",
            encode(Image.fromarray(np.full((32, 32), 40000, dtype=np.uint16)), "PNG"),
            422,
            "no_face",
        ),
        f("cmyk jpeg", encode(face.convert("CMYK"), "JPEG"), 200, ""),
        f(
            "animated gif",
            encode(frames[0], "GIF", save_all=True, append_images=frames[1:]),
            200,
            "",
        ),
        Bad(
            "wrong content type",
            415,
            "unsupported_media_type",
            content=jpeg,
            headers={"content-type": "image/jpeg"},
        ),
        Bad("no content type", 415, "unsupported_media_type", content=b"abc"),
        Bad(
            "multipart without boundary",
            400,
            "bad_request",
            content=b"--x\r\n",
            headers={"content-type": "multipart/form-data"},
        ),
        Bad("missing image", 422, "validation_error", data={"k": "3"}),
        Bad("bad base64", 400, "undecodable_image", json={"image": "not base64!!"}),
        Bad("server path as image", 400, "undecodable_image", json={"image": "/etc/passwd"}),
        Bad("json not an object", 422, "validation_error", json=[1, 2, 3]),
        Bad(
            "invalid json",
            422,
            "validation_error",
            content=b"{nope",
            headers={"content-type": "application/json"},
        ),
        Bad(
            "empty json body",
            422,
            "validation_error",
            content=b"",
            headers={"content-type": "application/json"},
        ),
        Bad("unknown field", 422, "validation_error", json={"image": b64, "kk": 1}),
        Bad("k=0", 422, "validation_error", json={"image": b64, "k": 0}),
        Bad("k=10^9", 422, "limit_exceeded", json={"image": b64, "k": 10**9}),
        Bad("k=10^30", 422, "limit_exceeded", json={"image": b64, "k": 10**30}),
        Bad(
            "k text",
            422,
            "validation_error",
            data={"k": "many"},
            files={"image": ("x.jpg", jpeg, "image/jpeg")},
        ),
        Bad(
            "unknown collection",
            404,
            "unknown_collection",
            json={"image": b64},
            path="/v1/collections/no-such-collection/find",
        ),
        Bad(
            "NUL in path",
            400,
            "bad_request",
            json={"image": b64},
            path="/v1/collections/a%00b/find",
        ),
        Bad(
            "unknown identity",
            404,
            "unknown_identity",
            path="/v1/verify",
            data={"collection": "{c}", "identity": "nobody"},
            files={"image1": ("x.jpg", jpeg, "image/jpeg")},
        ),
        Bad(
            "verify with nothing to compare",
            422,
            "validation_error",
            path="/v1/verify",
            files={"image1": ("x.jpg", jpeg, "image/jpeg")},
        ),
        Bad("unknown job", 404, "not_found", method="GET", path="/v1/jobs/deadbeef"),
        Bad("unknown route", 404, "route_not_found", method="GET", path="/v1/nothing/here"),
        Bad("wrong method", 405, "method_not_allowed", method="PUT", path="/v1/collections"),
        Bad(
            "face id too big",
            422,
            "validation_error",
            method="DELETE",
            path="/v1/collections/{c}/faces/99999999999999999999999",
        ),
        Bad(
            "NUL in external id",
            422,
            "invalid_id",
            path="/v1/collections/{c}/enroll",
            json={"external_id": "a\u0000b", "images": [b64]},
        ),
        Bad(
            "too many images",
            422,
            "limit_exceeded",
            path="/v1/collections/{c}/enroll",
            data={"external_id": "x"},
            files=[("images", (f"{i}.jpg", jpeg, "image/jpeg")) for i in range(40)],
        ),
        Bad(
            "metadata not json",
            422,
            "validation_error",
            path="/v1/collections/{c}/enroll",
            data={"external_id": "x", "metadata": "{nope"},
            files={"images": ("x.jpg", jpeg, "image/jpeg")},
        ),
    ]
