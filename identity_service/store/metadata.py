"""Identity metadata is stored only if it can be read back: JSON whose text is valid UTF-8.

A lone surrogate ("\\udfff") is a valid Python string but no UTF-8 can hold it; stored, it
would make every later read of the identity fail. Refusing it here, before any row is written,
keeps every door (API, library, jobs) from storing it. So is metadata nested deeper than
MAX_DEPTH: the HTTP API could not serialise it back (pydantic stops at about 250 levels).
"""

from __future__ import annotations

import json
from typing import Any

from ..errors import InvalidMetadataError

MAX_BYTES = 64 * 1024
MAX_DEPTH = 32


def _check_depth(metadata: dict[str, Any]) -> None:
    # Without recursion: a hostile body may nest thousands of levels.
    todo: list[tuple[Any, int]] = [(metadata, 1)]
    while todo:
        value, depth = todo.pop()
        if isinstance(value, dict):
            children: Any = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > MAX_DEPTH:
            raise InvalidMetadataError(
                f"metadata is nested deeper than {MAX_DEPTH} levels", limit=MAX_DEPTH
            )
        todo.extend((child, depth + 1) for child in children)


def check_metadata(metadata: dict[str, Any] | None) -> dict[str, Any] | None:
    if metadata is None:
        return None
    if not isinstance(metadata, dict):
        raise InvalidMetadataError(f"metadata must be a JSON object, got {type(metadata).__name__}")
    _check_depth(metadata)
    try:
        text = json.dumps(metadata, ensure_ascii=False, allow_nan=False)
        size = len(text.encode("utf-8"))
    except (TypeError, ValueError, UnicodeEncodeError, RecursionError) as exc:
        raise InvalidMetadataError(
            f"metadata cannot be stored as JSON text ({type(exc).__name__}: {str(exc)[:120]})"
        ) from exc
    if size > MAX_BYTES:
        raise InvalidMetadataError(f"metadata is {size} bytes as JSON; at most {MAX_BYTES}")
    return metadata
