"""The rule every external id (a person's id in a collection) must keep, on every door.

An id is 1 to 200 characters of valid Unicode (no lone surrogate such as "\\udfff", which no
UTF-8 text can hold), none of them '/' or a control character, and it is not '.' or '..'. Ids
are path segments of the HTTP API (``/v1/collections/{c}/identities/{id}``): a '/' could never
be addressed, and a '.' or '..' segment is collapsed by URL normalisation into another resource
(deleting '..' would address the collection itself).
"""

from __future__ import annotations

import re

from ..errors import InvalidIdentifierError

MAX_LENGTH = 200
# What the OpenAPI schema states (a JSON-schema pattern without look-arounds): no '/' and no
# control characters; '.' and '..' are refused besides.
PATTERN = r"^[^/\x00-\x1f\x7f]+$"
_ALLOWED = re.compile(PATTERN)


def check_unicode(external_id: str) -> str:
    """``external_id``, or InvalidIdentifierError when it holds a lone surrogate."""
    try:
        external_id.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidIdentifierError(
            "an id must be valid Unicode text (no lone surrogates such as \\udfff)"
        ) from None
    return external_id


def check_external_id(external_id: str) -> str:
    """``external_id`` itself, or :class:`InvalidIdentifierError` saying which rule it breaks."""
    if not isinstance(external_id, str) or not 1 <= len(external_id) <= MAX_LENGTH:
        raise InvalidIdentifierError(
            f"an id is 1 to {MAX_LENGTH} characters", external_id=str(external_id)[:MAX_LENGTH]
        )
    if external_id in (".", ".."):
        raise InvalidIdentifierError(f"{external_id!r} is not an id: '.' and '..' are refused")
    if not _ALLOWED.match(external_id):
        raise InvalidIdentifierError(
            "an id may not contain '/' or control characters", external_id=external_id
        )
    return check_unicode(external_id)
