"""Celery worker processes of faceid: the app they run (``workers.app``; its tasks are
``identity_service.jobs.tasks``) and their per-process state (``workers.runtime``).

Start one with ``faceid worker`` (or ``celery -A workers.app worker -Q cpu,admin``).
"""
