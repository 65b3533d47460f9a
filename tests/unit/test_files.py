from __future__ import annotations

import os

import pytest

from identity_service.files import write_atomically, write_bytes_atomically


def test_written_whole_with_a_normal_files_mode(tmp_path):
    path = write_bytes_atomically(tmp_path / "sub" / "f.bin", b"payload")
    assert path.read_bytes() == b"payload"
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask
    assert [p.name for p in path.parent.iterdir()] == ["f.bin"]


def test_a_refused_or_failed_write_leaves_the_old_file_and_no_litter(tmp_path):
    path = write_bytes_atomically(tmp_path / "f.bin", b"old")

    def refuse(tmp):
        assert tmp.read_bytes() == b"new" and tmp.parent == path.parent
        raise ValueError("refused")

    with pytest.raises(ValueError, match="refused"):
        write_atomically(path, lambda fh: fh.write(b"new"), refuse)

    def fail(fh):
        fh.write(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomically(path, fail)
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]
