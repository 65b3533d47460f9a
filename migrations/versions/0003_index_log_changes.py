"""index_log carries collection and identity changes: ops 'config' and 'identity'

A query node keeps a collection's settings, its calibrations in force and the names of its
identities in memory; it learns that one changed from the same log poll that feeds its index.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD = "op IN ('add', 'remove')"
NEW = "op IN ('add', 'remove', 'config', 'identity')"


def _check(condition: str) -> None:
    with op.batch_alter_table("index_log") as batch:
        batch.drop_constraint(op.f("ck_index_log_op"), type_="check")
        batch.create_check_constraint(op.f("ck_index_log_op"), condition)


def upgrade() -> None:
    _check(NEW)


def downgrade() -> None:
    op.execute(sa.text("DELETE FROM index_log WHERE op IN ('config', 'identity')"))
    _check(OLD)
