"""Jobs: enrollment batches and admin tasks as Celery tasks (:mod:`.tasks` on the app of
:mod:`.celery_app`), run by Celery worker processes (``workers/``, ``faceid worker``) or, with no
broker configured, in the calling process. The job rows in the database are the truth about
progress; Celery messages carry only row ids."""

# .tasks registers the Celery tasks on the app: importing anything of this package makes them
# runnable in-process (eager).
from . import tasks  # noqa: F401
from .admin import AdminOutcome, run_finish_migration, run_purge, run_reindex
from .api import (
    create_enroll_job,
    create_migration_job,
    dispatch_job,
    get_job,
    job_summary,
    list_jobs,
    open_service,
    submit_enroll_folder,
    submit_migrate_model,
    submit_purge,
    submit_reindex,
    wait_for_job,
)
from .dispatch import Dispatcher, Message
from .enroll import PartOutcome, run_enroll_part
from .recovery import RecoveryReport, recover_stalled

__all__ = [
    "AdminOutcome",
    "Dispatcher",
    "Message",
    "PartOutcome",
    "RecoveryReport",
    "create_enroll_job",
    "create_migration_job",
    "dispatch_job",
    "get_job",
    "job_summary",
    "list_jobs",
    "open_service",
    "recover_stalled",
    "run_enroll_part",
    "run_finish_migration",
    "run_purge",
    "run_reindex",
    "submit_enroll_folder",
    "submit_migrate_model",
    "submit_purge",
    "submit_reindex",
    "wait_for_job",
]
