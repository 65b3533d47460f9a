"""The e2e tests use the integration tests' Postgres fixtures (a fresh database per test)."""

from integration.conftest import postgres_server, postgres_url  # noqa: F401
