"""Gallery snapshots: one self-checking file per (collection, index_log sequence).

File layout (integers little-endian)::

    b"FACEIDX1"                    magic, 8 bytes
    u32                            header length
    header                         UTF-8 JSON: format, dim, kind, backend_kind, metric, seq,
                                   count, params, extra, meta, tombstones, index_bytes, created
    int64 * tombstones             HNSW ids removed but still in the graph
    index_bytes                    faiss.serialize_index of the structure
    sha256 of everything above     32 bytes
    b"FACEIDXE"                    end magic, 8 bytes

A file is written to a temporary name, fsynced and renamed, so a reader sees a whole snapshot
or none. Loading checks the checksum before faiss parses a byte.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import struct
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from .errors import CorruptSnapshotError, GalleryIndexError
from .gallery import GalleryIndex, IndexState

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
MAGIC = b"FACEIDX1"
END_MAGIC = b"FACEIDXE"
SUFFIX = ".fidx"
_TRAILER = 32 + len(END_MAGIC)
_PREFIX_LEN = len(MAGIC) + 4


def save_snapshot(
    index: GalleryIndex | IndexState,
    path: str | os.PathLike[str],
    seq: int,
    meta: dict[str, Any] | None = None,
) -> Path:
    """Write ``index`` (covering index_log up to ``seq``) atomically to ``path``."""
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
        raise GalleryIndexError(f"seq must be an int >= 0, got {seq!r}")
    state = index.export_state() if isinstance(index, GalleryIndex) else index
    body = state.faiss_bytes if state.faiss_bytes is not None else np.empty(0, np.uint8)
    tombstones = np.ascontiguousarray(state.tombstones, dtype="<i8")
    header = {
        "format": FORMAT_VERSION,
        "dim": state.dim,
        "kind": state.kind,
        "backend_kind": state.backend_kind,
        "metric": state.metric,
        "seq": seq,
        "count": state.count,
        "params": state.params,
        "extra": state.extra,
        "meta": meta or {},
        "tombstones": len(tombstones),
        "index_bytes": int(body.size),
        "created": time.time(),
    }
    try:
        header_bytes = json.dumps(header, sort_keys=True).encode()
    except (TypeError, ValueError) as exc:
        raise GalleryIndexError(f"snapshot meta must be JSON-serialisable: {exc}") from exc

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    digest = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as fh:
            parts = (
                MAGIC,
                struct.pack("<I", len(header_bytes)),
                header_bytes,
                tombstones.tobytes(),
                memoryview(body),
            )
            for part in parts:
                digest.update(part)
                fh.write(part)
            fh.write(digest.digest())
            fh.write(END_MAGIC)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise
    _fsync_dir(path.parent)
    return path


def load_snapshot(
    path: str | os.PathLike[str], dim: int | None = None, gpu: bool = False
) -> tuple[GalleryIndex, int, dict[str, Any]]:
    """Read a snapshot: (index, seq, meta). Any damage raises CorruptSnapshotError.

    ``dim``, when given, is the dimension the caller expects; a different one is an error too.
    """
    path = Path(path)
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise CorruptSnapshotError(f"snapshot {path} is unreadable: {exc}", path=str(path)) from exc

    def corrupt(why: str) -> CorruptSnapshotError:
        return CorruptSnapshotError(f"snapshot {path} is corrupt: {why}", path=str(path))

    if len(data) < _PREFIX_LEN + _TRAILER or bytes(data[: len(MAGIC)]) != MAGIC:
        raise corrupt("not a faceid snapshot (bad magic or too short)")
    if bytes(data[-len(END_MAGIC) :]) != END_MAGIC:
        raise corrupt("truncated (no end marker)")
    stored_digest = bytes(data[-_TRAILER : -len(END_MAGIC)])
    if hashlib.sha256(memoryview(data[:-_TRAILER])).digest() != stored_digest:
        raise corrupt("checksum mismatch")

    (header_len,) = struct.unpack("<I", bytes(data[len(MAGIC) : _PREFIX_LEN]))
    try:
        header = json.loads(bytes(data[_PREFIX_LEN : _PREFIX_LEN + header_len]).decode())
        fmt, header_dim = int(header["format"]), int(header["dim"])
        n_tomb, n_body = int(header["tombstones"]), int(header["index_bytes"])
        seq, meta = int(header["seq"]), dict(header["meta"])
    except (ValueError, KeyError, TypeError) as exc:
        raise corrupt(f"unreadable header ({exc})") from exc
    if fmt != FORMAT_VERSION:
        raise corrupt(f"format version {fmt}, this code reads {FORMAT_VERSION}")
    if dim is not None and header_dim != dim:
        raise corrupt(f"dimension {header_dim}, expected {dim}")
    start = _PREFIX_LEN + header_len
    if start + 8 * n_tomb + n_body + _TRAILER != len(data):
        raise corrupt("section lengths do not add up to the file size")
    tombstones = data[start : start + 8 * n_tomb].view("<i8").astype(np.int64)
    body = data[start + 8 * n_tomb : start + 8 * n_tomb + n_body]
    try:
        state = IndexState(
            dim=header_dim,
            kind=str(header["kind"]),
            backend_kind=header["backend_kind"],
            metric=str(header["metric"]),
            params=dict(header["params"]),
            extra=dict(header["extra"]),
            count=int(header["count"]),
            tombstones=tombstones,
            faiss_bytes=body if n_body else None,
        )
        index = GalleryIndex.from_state(state, gpu=gpu)
    except (GalleryIndexError, KeyError, TypeError, ValueError) as exc:
        raise corrupt(str(getattr(exc, "message", exc))) from exc
    return index, seq, meta


# --------------------------------------------------------------------- a folder of snapshots
def snapshot_name(seq: int, prefix: str = "gallery") -> str:
    return f"{prefix}-{seq:020d}{SUFFIX}"


def list_snapshots(folder: str | os.PathLike[str], prefix: str = "gallery") -> list[Path]:
    """Snapshots in ``folder`` written with ``prefix``, newest (highest seq) first."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    pattern = re.compile(re.escape(prefix) + r"-(\d{20})" + re.escape(SUFFIX) + "$")
    found = []
    for entry in folder.iterdir():
        match = pattern.match(entry.name)
        if match and entry.is_file():
            found.append((int(match.group(1)), entry))
    return [p for _, p in sorted(found, reverse=True)]


def latest_snapshot(folder: str | os.PathLike[str], prefix: str = "gallery") -> Path | None:
    snapshots = list_snapshots(folder, prefix)
    return snapshots[0] if snapshots else None


def prune_snapshots(
    folder: str | os.PathLike[str], prefix: str = "gallery", keep: int = 3
) -> list[Path]:
    """Delete all but the ``keep`` newest snapshots; returns the deleted paths."""
    removed = []
    for old in list_snapshots(folder, prefix)[max(keep, 1) :]:
        with contextlib.suppress(FileNotFoundError):
            old.unlink()
            removed.append(old)
    return removed


def save_to_folder(
    index: GalleryIndex | IndexState,
    folder: str | os.PathLike[str],
    seq: int,
    meta: dict[str, Any] | None = None,
    *,
    prefix: str = "gallery",
    keep: int = 3,
) -> Path:
    """Save as ``<folder>/<prefix>-<seq>.fidx`` and keep only the ``keep`` newest."""
    path = save_snapshot(index, Path(folder) / snapshot_name(seq, prefix), seq, meta)
    for old in prune_snapshots(folder, prefix, keep):
        log.debug("pruned old snapshot %s", old)
    return path


def _fsync_dir(folder: Path) -> None:
    # Makes the rename itself durable; not possible on every platform, hence best effort.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
