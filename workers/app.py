"""What a worker process runs (``faceid worker``, or ``celery -A workers.app worker``): the
Celery app of :mod:`identity_service.jobs.celery_app` with faceid's tasks
(:mod:`identity_service.jobs.tasks`), and this process's signal handlers and watchdog
(:mod:`.runtime`).
"""

from __future__ import annotations

from identity_service.jobs.celery_app import QUEUES, app, celery_config, create_app

from . import runtime  # noqa: F401  (connects the worker signals: model preload, watchdog)

__all__ = ["QUEUES", "app", "celery_config", "create_app"]
