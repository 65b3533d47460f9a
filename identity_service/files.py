"""Files written whole or not at all: a temporary file beside the target, renamed over it."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np


def write_atomically(
    path: Path,
    write: Callable[[BinaryIO], None],
    check: Callable[[Path], None] | None = None,
) -> Path:
    """``write`` a temporary file beside ``path``; ``check`` may refuse it (by raising) before it
    replaces ``path``. Nothing is left behind on failure. The file gets a normal file's mode
    (mkstemp's is owner-only, and workers may run as another user)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        if check is not None:
            check(tmp)
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o666 & ~umask)
        tmp.replace(path)
        return path
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes_atomically(path: Path, data: bytes) -> Path:
    return write_atomically(path, lambda fh: fh.write(data))


def save_npz_atomically(path: Path, **arrays: Any) -> Path:
    """``np.savez`` of ``arrays`` to ``path``, written whole or not at all."""
    return write_atomically(path, lambda fh: np.savez(fh, **arrays))
