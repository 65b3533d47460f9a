"""The FaceService a task runs on: in a worker process, that process's own (models load once
per process); in an in-process (eager) run, the submitter's, bound for the run by
:class:`~.dispatch.Dispatcher`."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from ..config import Settings
from ..service import FaceService

_service: FaceService | None = None
_bound: list[FaceService] = []  # in-process (eager) runs: the submitter's service
_lock = threading.Lock()


def service() -> FaceService:
    """The service tasks run on: the submitter's in eager mode, else this process's own."""
    if _bound:
        return _bound[-1]
    global _service
    with _lock:
        if _service is None:
            _service = FaceService.embedded(Settings())
        return _service


@contextmanager
def bound(svc: FaceService) -> Iterator[FaceService]:
    _bound.append(svc)
    try:
        yield svc
    finally:
        _bound.pop()
