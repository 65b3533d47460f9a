"""Settings of the job system on top of :class:`~identity_service.config.Settings`.

Same ``FACEID_`` environment prefix: ``FACEID_BROKER_URL`` (unset: tasks run in-process),
``FACEID_RESULT_BACKEND`` (default: the broker when it is Redis), ``FACEID_EMBED_QUEUE``,
``FACEID_VISIBILITY_TIMEOUT``, ``FACEID_JOB_STALL_SECONDS``, ``FACEID_JOB_SWEEP_INTERVAL``.
"""

from __future__ import annotations

from pydantic import Field

from ..config import Settings


class JobSettings(Settings):
    result_backend: str | None = None
    # Queue of the enrollment batches: "cpu", or "gpu" where GPU workers consume it.
    embed_queue: str = "cpu"
    # Redis redelivers a message its worker never acknowledged (killed) after this long; it
    # must exceed the longest task, or a slow task is run a second time meanwhile.
    visibility_timeout: float = Field(default=600.0, gt=0)
    # A running task whose worker stopped its heartbeat this long ago, or every unfinished
    # task when no job anywhere showed activity this long: sent again (see jobs/recovery.py).
    job_stall_seconds: float = Field(default=60.0, gt=0)
    # How often each worker beats the heart of its tasks and checks for stalled jobs; keep it
    # well below job_stall_seconds.
    job_sweep_interval: float = Field(default=5.0, gt=0)
    task_max_retries: int = Field(default=6, ge=0)

    @property
    def eager(self) -> bool:
        """No broker: tasks run in the calling process (the embedded default)."""
        return not self.broker_url


def job_settings(settings: Settings | None = None) -> JobSettings:
    """``settings`` as JobSettings (the job fields read from the environment)."""
    if isinstance(settings, JobSettings):
        return settings
    if settings is None:
        return JobSettings()
    return JobSettings(**settings.model_dump())
