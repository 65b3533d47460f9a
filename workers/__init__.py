"""Celery workers of faceid: the app (``workers.app``) and its tasks (``workers.tasks``).

Start one with ``faceid worker`` (or ``celery -A workers.app worker -Q cpu,admin``).
"""
