"""Requests that carry images: ``multipart/form-data`` (files) or JSON (base64 strings).

Images always reach the service as bytes: a JSON string is never taken for a server path or
a URL, whatever it looks like.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError
from starlette.datastructures import UploadFile

from ..errors import UndecodableImageError
from ..imaging import base64_bytes
from .errors import LimitExceededError, UnsupportedMediaTypeError, ValidationError

JSON_FIELDS = ("metadata",)  # form fields that carry JSON text


@dataclass
class ImageRequest:
    params: BaseModel
    images: dict[str, list[bytes]]  # field name -> images, in order

    def one(self, field: str) -> bytes | None:
        found = self.images.get(field) or []
        return found[0] if found else None


def decode_b64(text: str, field: str) -> bytes:
    try:
        return base64_bytes(text)
    except UndecodableImageError as exc:
        raise UndecodableImageError(f"{field}: {exc.message}", field=field) from exc


async def read_image_request(
    request: Request,
    params_model: type[BaseModel],
    json_model: type[BaseModel],
    image_fields: tuple[str, ...],
    max_images: int,
) -> ImageRequest:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype in ("multipart/form-data", "application/x-www-form-urlencoded"):
        return await _from_form(request, params_model, image_fields, max_images)
    if ctype == "application/json" or ctype.endswith("+json"):
        return await _from_json(request, json_model, image_fields, max_images)
    raise UnsupportedMediaTypeError(
        f"send multipart/form-data (image files) or application/json (base64), not {ctype!r}"
    )


async def _from_json(
    request: Request, model: type[BaseModel], fields: tuple[str, ...], max_images: int
) -> ImageRequest:
    raw = await request.body()
    try:
        body = json.loads(raw) if raw else None
    except ValueError as exc:  # not JSON, not UTF-8, or an integer over 4300 digits
        raise ValidationError(f"body is not valid JSON: {exc}") from exc
    parsed = _validate(model, body)
    images: dict[str, list[bytes]] = {}
    for field in fields:
        value = getattr(parsed, field)
        values = value if isinstance(value, list) else [] if value is None else [value]
        _check_count(sum(map(len, images.values())) + len(values), max_images)
        images[field] = [decode_b64(v, field) for v in values]
    return ImageRequest(parsed, images)


async def _from_form(
    request: Request, model: type[BaseModel], fields: tuple[str, ...], max_images: int
) -> ImageRequest:
    # Parse somewhat more files than allowed, so that most excess gets our own error code
    # below; far more is refused by the parser (400).
    form = await request.form(max_files=max(4 * max_images, 64), max_fields=100)
    images: dict[str, list[bytes]] = {}
    values: dict[str, Any] = {}
    try:
        for key, value in form.multi_items():
            if isinstance(value, UploadFile):
                if key not in fields:
                    raise ValidationError(f"unexpected file field {key!r}", field=key)
                images.setdefault(key, []).append(await value.read())
            elif key in fields:
                # A text field where a file belongs: take it as base64.
                images.setdefault(key, []).append(decode_b64(value, key))
            elif key in JSON_FIELDS:
                try:
                    values[key] = json.loads(value)
                except ValueError as exc:  # JSONDecodeError, or an over-long integer
                    raise ValidationError(f"{key}: not valid JSON", field=key) from exc
            else:
                values[key] = value
            _check_count(sum(map(len, images.values())), max_images)
    finally:
        await form.close()
    return ImageRequest(_validate(model, values), images)


def _validate(model: type[BaseModel], data: Any) -> BaseModel:
    try:
        return model.model_validate(data)
    except PydanticValidationError as exc:
        raise RequestValidationError(exc.errors()) from exc


def _check_count(count: int, limit: int) -> None:
    if count > limit:
        raise LimitExceededError(
            f"at most {limit} images per request; use an enroll job for more", limit=limit
        )


def image_body_openapi(
    json_model: type[BaseModel], files: dict[str, str], form: dict[str, Any]
) -> dict[str, Any]:
    """The requestBody of an image endpoint: both content types, for the OpenAPI document."""
    properties: dict[str, Any] = {
        name: (
            {"type": "array", "items": {"type": "string", "format": "binary"}}
            if kind == "many"
            else {"type": "string", "format": "binary"}
        )
        for name, kind in files.items()
    }
    properties.update(form)
    required = [name for name, kind in files.items() if kind in ("one", "many")]
    return {
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {"type": "object", "properties": properties, "required": required}
                },
                "application/json": {"schema": json_model.model_json_schema()},
            },
        }
    }
