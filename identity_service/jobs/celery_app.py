"""The Celery app, configured from the ``FACEID_`` settings of this process. Its tasks are in
:mod:`.tasks`; a worker process runs it through ``workers.app`` (``faceid worker``).

``FACEID_BROKER_URL`` unset means the embedded default: no broker, every task runs in the
process that submits it (``task_always_eager``), through the same task functions.
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from kombu import Exchange, Queue

from ..config import JobSettings

QUEUES = ("cpu", "gpu", "admin")


def celery_config(settings: JobSettings) -> dict[str, Any]:
    broker = settings.broker_url
    backend = settings.result_backend
    if backend is None and broker and broker.startswith(("redis://", "rediss://")):
        backend = broker
    return {
        "broker_url": broker or "memory://",
        "result_backend": backend,
        "task_always_eager": settings.eager,
        "task_eager_propagates": False,
        "task_store_eager_result": False,
        # The job rows are the results; nothing waits on a Celery result.
        "task_ignore_result": True,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_queues": [Queue(q, Exchange(q, type="direct"), routing_key=q) for q in QUEUES],
        "task_default_queue": "cpu",
        "task_default_exchange": "cpu",
        "task_default_routing_key": "cpu",
        "task_serializer": "json",
        "accept_content": ["json"],
        "broker_transport_options": {"visibility_timeout": settings.visibility_timeout},
        "broker_connection_retry_on_startup": True,
        "broker_connection_max_retries": None,  # a worker waits for its broker for ever
        "worker_cancel_long_running_tasks_on_connection_loss": False,
        # Model loading in worker_process_init takes seconds, more than the default 4 s.
        "worker_proc_alive_timeout": 120.0,
        "worker_send_task_events": False,
    }


def create_app(settings: JobSettings | None = None) -> Celery:
    app = Celery("faceid", include=["identity_service.jobs.tasks"])
    app.conf.update(celery_config(settings or JobSettings()))
    return app


app = create_app()
