"""Count the files code opens, to prove an image is read once."""

from __future__ import annotations

import builtins
import io
import os
from collections import Counter
from typing import Any

import pytest


def count_opens(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Opens per path (as the caller spelt it) from now until the test ends. ``Path.open``
    goes through ``io.open`` and plain ``open`` through ``builtins.open``: both are counted."""
    opened: Counter[str] = Counter()
    real_open = io.open

    def counting_open(file: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(file, (str, os.PathLike)):
            opened[os.fspath(file)] += 1
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(io, "open", counting_open)
    monkeypatch.setattr(builtins, "open", counting_open)
    return opened
