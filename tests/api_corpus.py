"""Bad inputs for the HTTP API, for every route: each case names the operation it probes
(``route``: method and path template, as in the OpenAPI document), the request, and the status
and error code the API documents for it. No answer may be a 5xx, and every error must have the
documented body ``{"error": {"code", "message", "details"?}}``.

Shared by the unit tests (in-process, tests/unit/test_api_bad_inputs.py) and the end-to-end
test (a real server on Postgres, tests/e2e/test_http_server.py). A case that fails as expected
changes nothing: destructive routes are only probed with unknown names, invalid bodies or keys
that may not use them, and enrollment only ever gets bytes that are no image.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import struct
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image

from identity_service.api.errors import error_classes

# The operations of the API, as the OpenAPI document names them.
CREATE = "POST /v1/collections"
LIST = "GET /v1/collections"
GET_COLLECTION = "GET /v1/collections/{collection}"
DELETE_COLLECTION = "DELETE /v1/collections/{collection}"
IDENTITIES = "GET /v1/collections/{collection}/identities"
GET_IDENTITY = "GET /v1/collections/{collection}/identities/{external_id}"
PATCH_IDENTITY = "PATCH /v1/collections/{collection}/identities/{external_id}"
DELETE_IDENTITY = "DELETE /v1/collections/{collection}/identities/{external_id}"
DELETE_FACE = "DELETE /v1/collections/{collection}/faces/{face_id}"
ENROLL = "POST /v1/collections/{collection}/enroll"
ENROLL_JOB = "POST /v1/collections/{collection}/enroll-jobs"
JOB = "GET /v1/jobs/{job_id}"
JOBS = "GET /v1/jobs"
REINDEX = "POST /v1/collections/{collection}/reindex"
FIND = "POST /v1/collections/{collection}/find"
VERIFY = "POST /v1/verify"
REPRESENT = "POST /v1/represent"
ANALYZE = "POST /v1/analyze"
HEALTHZ = "GET /healthz"
READYZ = "GET /readyz"
METRICS = "GET /metrics"

# Operations that take no input: they get probes (a garbage query), but no error is expected.
NO_INPUT = frozenset({HEALTHZ, READYZ, METRICS})
# Probes of something that is not an operation of the document: an unknown route, a method a
# path does not have, HEAD (which only /healthz answers, outside the document).
OFF_SCHEMA = frozenset(
    {
        "HEAD /healthz",
        "HEAD /readyz",
        "HEAD /metrics",
        "POST /healthz",
        "GET /v1/nothing/here",
        "PUT /v1/collections",
        "PUT /v1/collections/{collection}",
        "GET /v1/collections/{collection}/find",
        "POST /v1/jobs",
        "DELETE /v1/jobs/{job_id}",
    }
)

# The scope each operation needs: a key without it answers 403.
SCOPES = {
    CREATE: "enroll",
    LIST: "query",
    GET_COLLECTION: "query",
    DELETE_COLLECTION: "admin",
    IDENTITIES: "query",
    GET_IDENTITY: "query",
    PATCH_IDENTITY: "enroll",
    DELETE_IDENTITY: "enroll",
    DELETE_FACE: "enroll",
    ENROLL: "enroll",
    ENROLL_JOB: "enroll",
    JOB: "query",
    JOBS: "query",
    REINDEX: "admin",
    FIND: "query",
    VERIFY: "query",
    REPRESENT: "query",
    ANALYZE: "query",
}
WRONG_KEY = {"query": "enroll", "enroll": "query", "admin": "enroll"}
KEYS = ("admin", "query", "enroll", "revoked")  # what send() needs, all of one tenant

IMAGE_ROUTES = {
    FIND: "image",
    VERIFY: "image1",
    REPRESENT: "image",
    ANALYZE: "image",
    ENROLL: "images",
}
JSON_ROUTES = (CREATE, PATCH_IDENTITY, ENROLL_JOB)  # bodies FastAPI parses (no images)
BODY_ROUTES = (*JSON_ROUTES, *IMAGE_ROUTES)

OVER_LIMIT = 4 * 1024 * 1024 + 1  # both test servers take bodies up to 4 MiB
NOT_AN_IMAGE = b"xyz"  # what enrollment gets: never a face, so no probe enrolls anyone
DEPTH = 1000


@dataclass
class Bad:
    """One request and the answer the API documents for it."""

    name: str
    status: int
    code: str  # the error code; of a 200 enrollment, its first failure's code; else ""
    route: str = FIND
    params: dict[str, str] = field(default_factory=dict)  # path parameters, as sent
    query: str = ""
    key: str | None = "admin"  # one of KEYS, or None: no key
    files: Any = None  # multipart files
    data: dict[str, str] | None = None  # multipart fields
    json: Any = None
    content: bytes | None = None
    headers: dict[str, Any] = field(default_factory=dict)

    @property
    def method(self) -> str:
        return self.route.split(" ", 1)[0]

    def label(self) -> str:
        return f"{self.name} [{self.route}]"

    def path(self, collection: str) -> str:
        """The URL path; ``{c}`` and an unnamed ``{collection}`` are the test's collection."""
        path = self.route.split(" ", 1)[1]
        for name, value in {"collection": "{c}", **self.params}.items():
            path = path.replace("{" + name + "}", value)
        return path.replace("{c}", collection)

    def send(self, http: httpx.Client, collection: str, keys: dict[str, str]) -> httpx.Response:
        """Send the case with ``http`` (a TestClient or an httpx.Client with a base URL)."""
        headers: dict[str, Any] = {} if self.key is None else {"X-API-Key": keys[self.key]}
        headers.update(self.headers)
        kwargs: dict[str, Any] = {"headers": headers}
        for name in ("files", "data", "json", "content"):
            value = getattr(self, name)
            if value is not None:
                kwargs[name] = value if name == "files" else _fill(value, collection)
        path = self.path(collection)
        url = path + (f"?{self.query}" if self.query else "")
        request = http.build_request(self.method, url, **kwargs)
        if any(part in (".", "..") for part in path.split("/")):
            _verbatim(request, path)
        return http.send(request)


def _fill(value: Any, collection: str) -> Any:
    """``value`` with ``{c}`` standing for the test's collection."""
    if isinstance(value, bytes):
        return value.replace(b"{c}", collection.encode()) if b"{c}" in value else value
    if isinstance(value, str):
        return value.replace("{c}", collection)
    if isinstance(value, dict):
        return {k: _fill(v, collection) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, collection) for v in value]
    return value


def _verbatim(request: httpx.Request, path: str) -> None:
    """Send ``path`` with its '.' and '..' segments: httpx removes them, as most clients do,
    but a server must answer a client that does not (``curl --path-as-is``) as well."""
    # httpx has no public way to keep them: its parsed URL is replaced in place.
    request.url._uri_reference = request.url._uri_reference._replace(path=path)
    sent = request.url.raw_path.split(b"?", 1)[0]
    if sent != path.encode():
        raise RuntimeError(f"httpx sends {sent!r}, not {path!r}: update _verbatim")


# -- what a case must get --------------------------------------------------------------------------
CODE = re.compile(r"[a-z][a-z0-9_]*")
ERROR_KEYS = {"code", "message", "details"}


def outcome(response: httpx.Response) -> tuple[int, str]:
    """``(status, code)``: the error code of an error, the first failure's code of a 200
    enrollment, "" otherwise."""
    status = response.status_code
    if response.request.method == "HEAD":
        return status, ""
    try:
        body = response.json()
    except ValueError:
        return status, "<not JSON>" if status >= 400 else ""
    if not isinstance(body, dict):
        return status, "<not an object>" if status >= 400 else ""
    if status >= 400:
        error = body.get("error")
        return status, str(error.get("code")) if isinstance(error, dict) else "<no error>"
    failures = body.get("failures")
    if isinstance(failures, list) and failures and isinstance(failures[0], dict):
        return status, str(failures[0].get("code"))
    return status, ""


def body_problems(response: httpx.Response) -> list[str]:
    """How an error answer differs from the documented ``{"error": {"code", "message",
    "details"?}}`` (a code the API declares, with its status; a request id on a 5xx)."""
    status = response.status_code
    ctype = response.headers.get("content-type", "")
    if not ctype.startswith("application/json"):
        return [f"content-type {ctype!r}, not application/json: {response.text[:200]!r}"]
    try:
        body = response.json()
    except ValueError:
        return [f"the body is not JSON: {response.text[:200]!r}"]
    if not isinstance(body, dict) or set(body) != {"error"} or not isinstance(body["error"], dict):
        return [f'the body is not {{"error": {{...}}}}: {str(body)[:200]}']
    error = body["error"]
    out = []
    if not {"code", "message"} <= set(error) <= ERROR_KEYS:
        out.append(f"error has keys {sorted(error)}, not code, message and maybe details")
    code, message = error.get("code"), error.get("message")
    known = error_classes()
    if not isinstance(code, str) or not CODE.fullmatch(code):
        out.append(f"error code {code!r} is not a snake_case name")
    elif code not in known:
        out.append(f"error code {code!r} is not one the API declares (api.errors.error_classes)")
    elif known[code].http_status != status:
        out.append(f"error code {code!r} is declared with {known[code].http_status}, not {status}")
    if not isinstance(message, str) or not message.strip():
        out.append(f"error message {message!r} is empty or not text")
    details = error.get("details")
    if "details" in error and not isinstance(details, dict):
        out.append(f"error details {details!r} is not an object")
    if status >= 500:
        request_id = details.get("request_id") if isinstance(details, dict) else None
        if not request_id or response.headers.get("x-request-id") != request_id:
            out.append("a 5xx without its request id (details.request_id and X-Request-Id)")
    return out


def check(bad: Bad, response: httpx.Response) -> list[str]:
    """Every way ``response`` is not the documented answer to ``bad`` (empty when it is)."""
    got = outcome(response)
    out = []
    if response.status_code >= 500:
        out.append(f"a {response.status_code} (5xx), documented {bad.status} {bad.code!r}")
    elif got != (bad.status, bad.code):
        out.append(f"got {got[0]} {got[1]!r}, documented {bad.status} {bad.code!r}")
    if response.status_code >= 400 and bad.method != "HEAD":
        out += body_problems(response)
    if out and bad.method != "HEAD":
        out[-1] += f" -- body: {response.text[:300]}"
    return [f"{bad.label()}: {problem}" for problem in out]


# -- coverage --------------------------------------------------------------------------------------
def operations(openapi: dict[str, Any]) -> set[str]:
    """Every operation of an OpenAPI document, as ``METHOD /path/{template}``."""
    methods = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
    return {
        f"{method.upper()} {path}"
        for path, item in openapi.get("paths", {}).items()
        for method in item
        if method in methods
    }


def uncovered(openapi: dict[str, Any], cases: Iterable[Bad]) -> dict[str, str]:
    """Operations of the document the cases leave out: with no case at all, or (outside
    NO_INPUT) with no case that expects an error."""
    cases = list(cases)
    probed = {c.route for c in cases}
    erring = {c.route for c in cases if c.status >= 400}
    missing = {}
    for op in sorted(operations(openapi)):
        if op not in probed:
            missing[op] = "no case"
        elif op not in NO_INPUT and op not in erring:
            missing[op] = "no case that expects an error"
    return missing


def tally(cases: Iterable[Bad], openapi: dict[str, Any]) -> tuple[int, int]:
    """``(cases, operations of the document they probe)``."""
    cases = list(cases)
    return len(cases), len({c.route for c in cases} & operations(openapi))


# -- images ----------------------------------------------------------------------------------------
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


@cache
def png_bomb(side: int = 7000) -> bytes:
    """A real, small PNG that decodes to side*side pixels (49 MP by default)."""
    buf = io.BytesIO()
    Image.new("L", (side, side)).save(buf, "PNG", optimize=False, compress_level=9)
    return buf.getvalue()


def encode(image: Image.Image, fmt: str, **kw: Any) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **kw)
    return buf.getvalue()


def tiff(width: int, height: int) -> bytes:
    """A 4x4 grey TIFF whose header says ``width x height``."""
    data = bytearray(encode(Image.new("L", (4, 4)), "TIFF"))
    start = struct.unpack("<I", data[4:8])[0]
    for i in range(struct.unpack("<H", data[start : start + 2])[0]):
        entry = start + 2 + 12 * i
        tag, kind = struct.unpack("<HH", data[entry : entry + 4])
        if tag in (256, 257):  # ImageWidth, ImageLength
            value = width if tag == 256 else height
            fmt = "<H" if kind == 3 else "<I"
            data[entry + 8 : entry + 8 + struct.calcsize(fmt)] = struct.pack(fmt, value)
    return bytes(data)


def bad_images(jpeg: bytes) -> list[tuple[str, bytes, int, str]]:
    """``(name, bytes, status, code)`` of images every image route must refuse."""
    return [
        ("not an image (text)", b"hello, this is not an image\n" * 10, 400, "undecodable_image"),
        ("random bytes", os.urandom(4096), 400, "undecodable_image"),
        ("html", b"<html><body>nope</body></html>", 400, "undecodable_image"),
        ("pdf", b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n", 400, "undecodable_image"),
        ("zero bytes", b"", 400, "empty_image"),
        ("truncated jpeg", jpeg[: len(jpeg) // 2], 400, "undecodable_image"),
        (
            "PPM with a huge maxval",
            b"P6\n64 64\n99999999999\n" + b"\0" * 64,
            400,
            "undecodable_image",
        ),
        (
            "PNG with a truncated IHDR",
            b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR\x00\x00",
            400,
            "undecodable_image",
        ),
        ("zero-width PNG", declared_png(0, 10), 400, "undecodable_image"),
        ("zero-width TIFF", tiff(0, 4), 400, "undecodable_image"),
        ("TIFF declaring 65535x65535", tiff(65535, 65535), 413, "image_too_large"),
        ("PNG declaring 100000x100000", declared_png(100_000, 100_000), 413, "image_too_large"),
        ("PNG bomb over the pixel limit (49 MP)", png_bomb(), 413, "image_too_large"),
    ]


# -- the corpus ------------------------------------------------------------------------------------
VALIDATION = (422, "validation_error")
BAD_REQUEST = (400, "bad_request")
UNDECODABLE = (400, "undecodable_image")
METADATA = (422, "invalid_metadata")
BAD_ID = (422, "invalid_id")


def _json(value: Any) -> dict[str, Any]:
    """A JSON body as bytes: escapes such as a lone surrogate and NaN survive, which httpx's
    ``json=`` would refuse to encode."""
    return _raw_json(json.dumps(value))


def _raw_json(text: str) -> dict[str, Any]:
    return {"content": text.encode(), "headers": {"content-type": "application/json"}}


def _deep_list(depth: int = DEPTH) -> str:
    return "[" * depth + "]" * depth


def _deep_object(depth: int = DEPTH) -> str:
    return '{"a":' * depth + "1" + "}" * depth


def _nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


# Besides its image, what each image route takes (verify: a second image to compare with).
IMAGE_FIELDS: dict[str, dict[str, Any]] = {
    FIND: {"k": 1},
    VERIFY: {},
    REPRESENT: {"max_faces": 1},
    ANALYZE: {"actions": "age"},
    ENROLL: {"external_id": "probe"},
}


def _form(route: str, image: bytes | None, other: bytes = b"") -> dict[str, Any]:
    """A multipart request to an image route whose (first) image is ``image``."""
    data = {k: str(v) for k, v in IMAGE_FIELDS[route].items()} or None
    if image is None:
        return {"json": None, "data": data or {"collection": "{c}"}}
    files: dict[str, Any] = {IMAGE_ROUTES[route]: ("x", image, "application/octet-stream")}
    if route == VERIFY:
        files["image2"] = ("y.jpg", other, "image/jpeg")
    return {"json": None, "files": files, "data": data}


def _image_json(route: str, image: str, **fields: Any) -> dict[str, Any]:
    """A JSON request to an image route whose (only) image is the text ``image``."""
    value: Any = [image] if route == ENROLL else image
    return {"json": None, **_json({**IMAGE_FIELDS[route], IMAGE_ROUTES[route]: value, **fields})}


def corpus(face_jpeg: Path) -> list[Bad]:
    """Every case, for ``face_jpeg`` (a photo of one face)."""
    jpeg = face_jpeg.read_bytes()
    b64 = base64.b64encode(jpeg).decode()
    nothing = base64.b64encode(NOT_AN_IMAGE).decode()
    big = b"x" * OVER_LIMIT
    # A valid request to each operation, which a case breaks in one way. Those of destructive
    # operations name nothing that exists.
    valid: dict[str, dict[str, Any]] = {
        CREATE: {"json": {"name": "probe-never-made"}},
        LIST: {},
        GET_COLLECTION: {},
        DELETE_COLLECTION: {"params": {"collection": "no-such-collection"}},
        IDENTITIES: {},
        GET_IDENTITY: {"params": {"external_id": "nobody"}},
        PATCH_IDENTITY: {"params": {"external_id": "nobody"}, "json": {"name": "x"}},
        DELETE_IDENTITY: {"params": {"external_id": "nobody"}},
        DELETE_FACE: {"params": {"face_id": "999999999"}},
        ENROLL: {"json": {"external_id": "probe", "images": [nothing]}},
        ENROLL_JOB: {"json": {"path": "/no/such/folder"}},
        JOB: {"params": {"job_id": "deadbeef"}},
        JOBS: {},
        REINDEX: {"params": {"collection": "no-such-collection"}},
        FIND: {"json": {"image": b64}},
        VERIFY: {"json": {"image1": b64, "image2": b64}},
        REPRESENT: {"json": {"image": b64}},
        ANALYZE: {"json": {"image": b64}},
    }
    cases: list[Bad] = []

    def add(route: str, name: str, expect: tuple[int, str], **change: Any) -> None:
        """``route``'s valid request, with ``change`` (path parameters merged)."""
        request = {**valid[route], **change}
        request["params"] = {**valid[route].get("params", {}), **change.get("params", {})}
        cases.append(Bad(name, *expect, route=route, **request))

    # -- keys: missing, malformed, unknown, revoked, lacking the scope -----------------------------
    unauthorized = (401, "unauthorized")
    for route, scope in SCOPES.items():
        add(route, "no API key", unauthorized, key=None)
        add(
            route,
            "unknown API key",
            unauthorized,
            key=None,
            headers={"X-API-Key": "fid_" + "A" * 43},
        )
        add(route, "revoked API key", unauthorized, key="revoked")
        basic = {"Authorization": "Basic YWRtaW46YWRtaW4="}
        add(route, "Basic credentials", unauthorized, key=None, headers=basic)
        empty = {"Authorization": "Bearer"}
        add(route, "Bearer without a token", unauthorized, key=None, headers=empty)
        latin = {"X-API-Key": b"fid_\xe9\xff"}
        add(route, "key with non-ASCII bytes", unauthorized, key=None, headers=latin)
        add(route, f"key without the {scope!r} scope", (403, "forbidden"), key=WRONG_KEY[scope])

    # -- collection names in the path (on every route that has one) --------------------------------
    unknown = (404, "unknown_collection")
    for route in SCOPES:
        if "{collection}" not in route:
            continue
        for name, value, expect in [
            ("'.' encoded", "%2E", unknown),
            ("'..' encoded", "%2E%2E", unknown),
            ("'.' as is", ".", unknown),
            ("'..' as is", "..", unknown),
            ("'/' encoded", "a%2Fb", BAD_REQUEST),
            ("'/' encoded, spelling another route", "{c}%2Fidentities", BAD_REQUEST),
            ("a control character", "a%01b", unknown),
            ("a tab", "a%09b", unknown),
            ("NUL", "a%00b", BAD_REQUEST),
            ("over-long (300)", "x" * 300, unknown),
            ("invalid UTF-8", "%FF%FE", unknown),
            ("unknown", "no-such-collection", unknown),
        ]:
            add(route, f"collection {name}", expect, params={"collection": value})

    # -- identity ids in the path ------------------------------------------------------------------
    unknown = (404, "unknown_identity")
    for route in (GET_IDENTITY, PATCH_IDENTITY, DELETE_IDENTITY):
        for name, value, expect in [
            ("'.' encoded", "%2E", unknown),
            ("'..' encoded", "%2E%2E", unknown),
            ("'.' as is", ".", unknown),
            ("'..' as is", "..", unknown),
            ("'/' encoded", "a%2Fb", BAD_REQUEST),
            ("a control character", "a%01b", unknown),
            ("a newline", "a%0Ab", unknown),
            ("DEL", "a%7Fb", unknown),
            ("NUL", "a%00b", BAD_REQUEST),
            ("over-long (201)", "x" * 201, unknown),
            ("over-long (4000)", "x" * 4000, unknown),
            ("a surrogate's UTF-8 bytes", "%ED%BF%BF", unknown),
            ("unknown", "nobody", unknown),
        ]:
            add(route, f"identity {name}", expect, params={"external_id": value})

    # -- job and face ids --------------------------------------------------------------------------
    unknown = (404, "not_found")
    for name, value, expect in [
        ("'.' encoded", "%2E", unknown),
        ("'..' encoded", "%2E%2E", unknown),
        ("'.' as is", ".", unknown),
        ("'..' as is", "..", unknown),
        ("'/' encoded", "a%2Fb", BAD_REQUEST),
        ("a control character", "a%01b", unknown),
        ("NUL", "a%00b", BAD_REQUEST),
        ("over-long (300)", "x" * 300, unknown),
        ("invalid UTF-8", "%FF", unknown),
        ("unknown", "deadbeef", unknown),
    ]:
        add(JOB, f"job {name}", expect, params={"job_id": value})
    for value in ("-1", "0", "abc", "%2E", "%2E%2E", "1e3", "9223372036854775808", "9" * 23):
        add(DELETE_FACE, f"face id {value}", VALIDATION, params={"face_id": value})
    add(DELETE_FACE, "unknown face id", (404, "unknown_face"))

    # -- query parameters --------------------------------------------------------------------------
    for route, most in ((LIST, 1000), (IDENTITIES, 1000), (JOBS, 500)):
        limits = ["0", "-1", str(most + 1), "99999999999999999999", "abc", "1e400", "1.5"]
        for query in [*(f"limit={n}" for n in limits), "limit=1&limit=-5"]:
            add(route, query, VALIDATION, query=query)
        if route != JOBS:
            for query in ("offset=-1", "offset=99999999999999999999", "offset=x"):
                add(route, query, VALIDATION, query=query)
        add(route, "NUL in the query", BAD_REQUEST, query="limit=%00")
        add(route, "unknown and undecodable query parameters", (200, ""), query="zzz=%FF%01&x")
    add(JOBS, "status over 16 characters", VALIDATION, query="status=" + "x" * 17)
    add(JOBS, "status with a control character and invalid UTF-8", (200, ""), query="status=%01%FF")

    # -- every body: nested 1000 deep, empty, not JSON, not UTF-8, huge numbers, oversized ---------
    for route in BODY_ROUTES:
        media = (415, "unsupported_media_type") if route in IMAGE_ROUTES else VALIDATION
        for name, text in [
            (f"JSON list nested {DEPTH} deep", _deep_list()),
            (f"JSON object nested {DEPTH} deep", _deep_object()),
            ("empty JSON body", ""),
            ("invalid JSON", "{nope"),
            ("JSON not an object", "[1, 2, 3]"),
            ("JSON null", "null"),
            ("integer of 5000 digits", '{"x": 1' + "0" * 5000 + "}"),
            ("a lone surrogate as a field name", '{"\\udfff": 1}'),
        ]:
            add(route, name, VALIDATION, json=None, **_raw_json(text))
        add(
            route,
            "JSON not UTF-8",
            VALIDATION,
            json=None,
            **_raw_json("") | {"content": b'{"\xff"}'},
        )
        text_plain = {"content-type": "text/plain"}
        add(route, "text/plain", media, json=None, content=b'{"x": 1}', headers=text_plain)
        add(route, "body over the size limit", (413, "payload_too_large"), json=None, content=big)
    add(REINDEX, "body over the size limit", (413, "payload_too_large"), content=big)

    # -- images, on every route that takes one -----------------------------------------------------
    for route in IMAGE_ROUTES:
        for name, image, status, code in bad_images(jpeg):
            # Enrollment lists an image it cannot use among its answer's failures (200).
            expect = (200 if route == ENROLL else status, code)
            add(route, name, expect, **_form(route, image, jpeg))
        add(route, "invalid base64", UNDECODABLE, **_image_json(route, "not base64!!"))
        add(route, "a server path as the image", UNDECODABLE, **_image_json(route, "/etc/passwd"))
        add(route, "a lone surrogate as the image", UNDECODABLE, **_image_json(route, "\udfff"))
        media = (415, "unsupported_media_type")
        as_jpeg = {"content-type": "image/jpeg"}
        add(route, "raw JPEG body", media, json=None, content=jpeg, headers=as_jpeg)
        add(route, "no content type", media, json=None, content=b"abc")
        no_boundary = {"content-type": "multipart/form-data"}
        add(
            route,
            "multipart without a boundary",
            BAD_REQUEST,
            json=None,
            content=b"--x\r\n",
            headers=no_boundary,
        )
        add(route, "form without the image", VALIDATION, **_form(route, None))
        other = {"other": ("x.jpg", jpeg, "image/jpeg")}
        add(
            route, "a file in an unknown field", VALIDATION, **_form(route, None) | {"files": other}
        )
        add(
            route, "JSON without the image", VALIDATION, json=IMAGE_FIELDS[route] or {"image2": b64}
        )

    # -- find: parameters --------------------------------------------------------------------------
    limit = (422, "limit_exceeded")
    for name, params, expect in [
        ("k=0", {"k": 0}, VALIDATION),
        ("k=-1", {"k": -1}, VALIDATION),
        ("k=1.5", {"k": 1.5}, VALIDATION),
        ("k text", {"k": "many"}, VALIDATION),
        ("k=10^9", {"k": 10**9}, limit),
        ("k=10^30", {"k": 10**30}, limit),
        ("fpir=0", {"fpir": 0}, VALIDATION),
        ("fpir=1", {"fpir": 1}, VALIDATION),
        ("fpir=-0.1", {"fpir": -0.1}, VALIDATION),
        ("fpir=1.5", {"fpir": 1.5}, VALIDATION),
        ("fpir=NaN", {"fpir": float("nan")}, VALIDATION),
        ("fpir=Infinity", {"fpir": float("inf")}, VALIDATION),
        ("threshold=0", {"threshold": 0}, VALIDATION),
        ("threshold=2", {"threshold": 2}, VALIDATION),
        ("threshold=-Infinity", {"threshold": float("-inf")}, VALIDATION),
        ("aggregate=median", {"aggregate": "median"}, VALIDATION),
        ("unknown field", {"kk": 1}, VALIDATION),
    ]:
        add(FIND, name, expect, json=None, **_json({"image": b64, **params}))
    photo = {"image": ("x.jpg", jpeg, "image/jpeg")}
    for name, data in [
        ("form k=-1", {"k": "-1"}),
        ("form k text", {"k": "many"}),
        ("form fpir=2", {"fpir": "2"}),
        ("form fpir=nan", {"fpir": "nan"}),
        ("form k of 5000 digits", {"k": "1" * 5000}),
    ]:
        add(FIND, name, VALIDATION, json=None, data=data, files=photo)
    noise = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    face = Image.open(face_jpeg)
    for name, image, expect in [
        ("noise image, no face", encode(Image.fromarray(noise), "PNG"), (422, "no_face")),
        ("1x1 png", encode(Image.new("RGB", (1, 1)), "PNG"), (422, "no_face")),
        (
            "16-bit png",
            encode(Image.fromarray(np.full((32, 32), 40000, np.uint16)), "PNG"),
            (422, "no_face"),
        ),
        ("cmyk jpeg (served)", encode(face.convert("CMYK"), "JPEG"), (200, "")),
        (
            "animated gif (served)",
            encode(face, "GIF", save_all=True, append_images=[face.rotate(15)]),
            (200, ""),
        ),
    ]:
        add(FIND, name, expect, **_form(FIND, image))

    # -- verify ------------------------------------------------------------------------------------
    for name, fields, expect in [
        (
            "image2 and identity both",
            {"image2": b64, "collection": "{c}", "identity": "x"},
            VALIDATION,
        ),
        ("identity without a collection", {"identity": "x"}, VALIDATION),
        ("nothing to compare with", {}, VALIDATION),
        (
            "unknown identity",
            {"collection": "{c}", "identity": "nobody"},
            (404, "unknown_identity"),
        ),
        ("identity '..'", {"collection": "{c}", "identity": ".."}, (404, "unknown_identity")),
        (
            "unknown collection",
            {"collection": "nowhere", "identity": "x"},
            (404, "unknown_collection"),
        ),
        ("collection '..'", {"collection": "..", "identity": "x"}, (404, "unknown_collection")),
        ("identity with a lone surrogate", {"collection": "{c}", "identity": "\udfff"}, VALIDATION),
        ("collection with a lone surrogate", {"image2": b64, "collection": "\udfff"}, VALIDATION),
        ("identity with NUL", {"collection": "{c}", "identity": "a\x00b"}, VALIDATION),
        ("identity over-long (256)", {"collection": "{c}", "identity": "x" * 256}, VALIDATION),
        ("unknown field", {"image2": b64, "extra": 1}, VALIDATION),
    ]:
        add(VERIFY, name, expect, json=None, **_json({"image1": b64, **fields}))
    form = {"collection": "{c}", "identity": "nobody"}
    photo1 = {"image1": ("x.jpg", jpeg, "image/jpeg")}
    add(
        VERIFY,
        "form: unknown identity",
        (404, "unknown_identity"),
        json=None,
        data=form,
        files=photo1,
    )

    # -- represent and analyze ---------------------------------------------------------------------
    for route in (REPRESENT, ANALYZE):
        for value in (0, -1, 101, 10**30, "many"):
            add(route, f"max_faces={value}", VALIDATION, json={"image": b64, "max_faces": value})
    for name, fields, expect in [
        ("unknown collection", {"collection": "nowhere"}, (404, "unknown_collection")),
        ("collection '..'", {"collection": ".."}, (404, "unknown_collection")),
        ("collection with a lone surrogate", {"collection": "\udfff"}, VALIDATION),
        ("collection with NUL", {"collection": "a\x00b"}, VALIDATION),
        ("collection over-long (129)", {"collection": "x" * 129}, VALIDATION),
        ("unknown field", {"model": "x"}, VALIDATION),
    ]:
        add(REPRESENT, name, expect, json=None, **_json({"image": b64, **fields}))
    for name, actions in [
        ("unknown action", "foo"),
        ("no action", ""),
        ("only commas", ",,"),
        ("actions over-long (65)", "age," * 16 + "a"),
        ("actions with a lone surrogate", "\udfff"),
    ]:
        add(ANALYZE, name, VALIDATION, json=None, **_json({"image": b64, "actions": actions}))

    # -- collections: create -----------------------------------------------------------------------
    for name in ("", ".", "..", "a/b", "-x", "x" * 101, "a\x01b", "a b", "a\x00b", "\udfff"):
        add(
            CREATE, f"collection name {name[:12]!r}", VALIDATION, json=None, **_json({"name": name})
        )
    for name, fields, expect in [
        ("wrong model name", {"model": "no-such-model"}, (400, "unknown_model")),
        ("model name with NUL", {"model": "a\x00b"}, VALIDATION),
        ("model name with a lone surrogate", {"model": "\udfff"}, VALIDATION),
        ("model name over-long (101)", {"model": "m" * 101}, VALIDATION),
        ("threshold=0", {"threshold": 0}, VALIDATION),
        ("threshold=2", {"threshold": 2}, VALIDATION),
        ("threshold=NaN", {"threshold": float("nan")}, VALIDATION),
        ("name not a string", {"name": 5}, VALIDATION),
        ("unknown field", {"dim": 7}, VALIDATION),
        ("name taken", {"name": "{c}"}, (409, "duplicate")),
    ]:
        add(CREATE, name, expect, json=None, **_json({"name": "probe-never-made", **fields}))

    # -- identities: PATCH (of an unknown identity: what is refused is refused first) --------------
    for name, change, expect in [
        ("metadata with a lone surrogate", {"metadata": {"x": "\udfff"}}, METADATA),
        ("metadata key with a lone surrogate", {"metadata": {"\udfff": 1}}, METADATA),
        ("metadata nested 33 deep", {"metadata": _nested(33)}, METADATA),
        ("metadata over 64 KiB", {"metadata": {"x": "y" * 70_000}}, METADATA),
        ("metadata NaN", {"metadata": {"x": float("nan")}}, METADATA),
        ("metadata not an object", {"metadata": [1, 2]}, VALIDATION),
        ("name with a lone surrogate", {"name": "\udfff"}, VALIDATION),
        ("name with NUL", {"name": "a\x00b"}, VALIDATION),
        ("name over-long (201)", {"name": "n" * 201}, VALIDATION),
        ("merge not a boolean", {"merge": "maybe"}, VALIDATION),
        ("unknown field", {"team": "blue"}, VALIDATION),
    ]:
        add(PATCH_IDENTITY, name, expect, json=None, **_json(change))
    deep = _raw_json('{"metadata": ' + _deep_object() + "}")
    add(PATCH_IDENTITY, f"metadata nested {DEPTH} deep", VALIDATION, json=None, **deep)

    # -- enroll ------------------------------------------------------------------------------------
    for name, external_id in [
        ("'.'", "."),
        ("'..'", ".."),
        ("with '/'", "a/b"),
        ("with a tab", "a\tb"),
        ("with NUL", "a\x00b"),
        ("over-long (201)", "x" * 201),
        ("empty", ""),
        ("a lone surrogate", "\udfff"),
    ]:
        body = {"external_id": external_id, "images": [nothing]}
        add(ENROLL, f"external id {name}", BAD_ID, json=None, **_json(body))
        if external_id in ("..", "a/b", "a\tb"):
            form = {"external_id": external_id}
            files = {"images": ("x", NOT_AN_IMAGE, "image/jpeg")}
            add(ENROLL, f"form: external id {name}", BAD_ID, json=None, data=form, files=files)
    for name, change, expect in [
        ("metadata with a lone surrogate", {"metadata": {"x": "\udfff"}}, METADATA),
        ("metadata nested 33 deep", {"metadata": _nested(33)}, METADATA),
        ("metadata not an object", {"metadata": [1]}, VALIDATION),
        ("name with a lone surrogate", {"name": "\udfff"}, VALIDATION),
        ("name with NUL", {"name": "a\x00b"}, VALIDATION),
        ("name over-long (201)", {"name": "n" * 201}, VALIDATION),
        ("no images", {"images": []}, VALIDATION),
        ("too many images", {"images": [nothing] * 40}, (422, "limit_exceeded")),
        ("unknown field", {"faces": 1}, VALIDATION),
    ]:
        body = {"external_id": "probe", "images": [nothing], **change}
        add(ENROLL, name, expect, json=None, **_json(body))
    deep = _raw_json(
        f'{{"external_id": "probe", "images": ["{nothing}"], "metadata": {_deep_object()}}}'
    )
    add(ENROLL, f"metadata nested {DEPTH} deep", VALIDATION, json=None, **deep)
    files = {"images": ("x", NOT_AN_IMAGE, "image/jpeg")}
    for name, metadata, expect in [
        ("metadata field with a lone surrogate", '{"x": "\\udfff"}', METADATA),
        (f"metadata field nested {DEPTH} deep", _deep_object(), VALIDATION),
        (f"metadata field, a list nested {DEPTH} deep", _deep_list(), VALIDATION),
        ("metadata field nested 33 deep", json.dumps(_nested(33)), METADATA),
        ("metadata field not JSON", "{nope", VALIDATION),
        ("metadata field with a 5000-digit integer", '{"x": 1' + "0" * 5000 + "}", VALIDATION),
    ]:
        form = {"external_id": "probe", "metadata": metadata}
        add(ENROLL, name, expect, json=None, data=form, files=files)
    form = {"external_id": "probe"}
    many = [("images", (f"{i}.jpg", NOT_AN_IMAGE, "image/jpeg")) for i in range(40)]
    add(ENROLL, "form: too many images", (422, "limit_exceeded"), json=None, data=form, files=many)
    add(ENROLL, "form: no images", VALIDATION, json=None, data=form)
    named = {**files, "name": ("n.txt", b"x", "text/plain")}
    add(ENROLL, "form: a file in a text field", VALIDATION, json=None, data=form, files=named)

    # -- enroll jobs -------------------------------------------------------------------------------
    for name, change in [
        ("empty path", {"path": ""}),
        ("path with NUL", {"path": "/a\x00b"}),
        ("path with a lone surrogate", {"path": "/\udfff"}),
        ("path over-long (4097)", {"path": "/" + "p" * 4096}),
        ("batch_size=0", {"batch_size": 0}),
        ("batch_size=1001", {"batch_size": 1001}),
        ("limit=0", {"limit": 0}),
        ("a URL to fetch", {"url": "http://example.com/photos.zip"}),
        ("no path", {"path": None}),
    ]:
        body = {k: v for k, v in {"path": "/no/such/folder", **change}.items() if v is not None}
        add(ENROLL_JOB, name, VALIDATION, json=None, **_json(body))
    key = {"Idempotency-Key": "k" * 201}
    add(ENROLL_JOB, "Idempotency-Key over 200 characters", VALIDATION, headers=key)

    # -- health: no input, so garbage is ignored; HEAD only on /healthz ----------------------------
    for route in (HEALTHZ, READYZ, METRICS):
        valid[route] = {"key": None}
        add(route, "garbage query", (200, ""), query="x=%FF&y=%01&" + "z" * 2000)
        add(route, "garbage API key", (200, ""), headers={"X-API-Key": b"\xff\xfe"})
    for route, status in (("HEAD /healthz", 200), ("HEAD /readyz", 405), ("HEAD /metrics", 405)):
        cases.append(Bad("HEAD", status, "", route=route, key=None))
    cases.append(Bad("POST", 405, "method_not_allowed", route="POST /healthz", content=b"x"))

    # -- routes and methods that do not exist ------------------------------------------------------
    cases.append(Bad("unknown route", 404, "route_not_found", route="GET /v1/nothing/here"))
    for route in (
        "PUT /v1/collections",
        "PUT /v1/collections/{collection}",
        "GET /v1/collections/{collection}/find",
        "POST /v1/jobs",
        "DELETE /v1/jobs/{job_id}",
    ):
        cases.append(
            Bad("wrong method", 405, "method_not_allowed", route=route, params=valid[JOB]["params"])
        )
    return cases
