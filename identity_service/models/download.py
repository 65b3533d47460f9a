"""Fetch a model file into the cache: streamed to a temporary file, checked, then renamed."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import httpx

from ..errors import ChecksumMismatchError, ModelFileMissingError


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def download(url: str, target: Path, sha256: str | None, timeout: float = 30.0) -> Path:
    """Download ``url`` to ``target``. A checksum mismatch leaves nothing behind."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=target.name + ".", suffix=".part", dir=target.parent)
    tmp = Path(tmp_name)
    digest = hashlib.sha256()
    try:
        with (
            os.fdopen(fd, "wb") as out,
            httpx.stream("GET", url, follow_redirects=True, timeout=timeout) as response,
        ):
            response.raise_for_status()
            for block in response.iter_bytes(1 << 20):
                digest.update(block)
                out.write(block)
        actual = digest.hexdigest()
        if sha256 is not None and actual != sha256:
            raise ChecksumMismatchError(
                f"downloaded {url} has sha256 {actual}, expected {sha256}; file discarded",
                url=url,
                expected=sha256,
                actual=actual,
            )
        tmp.replace(target)
        return target
    except httpx.HTTPError as exc:
        raise ModelFileMissingError(
            f"could not download {url}: {exc}", url=url, target=str(target)
        ) from exc
    finally:
        tmp.unlink(missing_ok=True)
