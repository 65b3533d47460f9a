"""open-set calibration: collections.target_fpir and open_set_calibrations

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("collections") as batch:
        batch.add_column(sa.Column("target_fpir", sa.Float(), nullable=True))
    op.create_table(
        "open_set_calibrations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("collection_id", sa.Integer(), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("gallery_faces", sa.Integer(), nullable=False),
        sa.Column("gallery_identities", sa.Integer(), nullable=False),
        sa.Column("n_searches", sa.Integer(), nullable=False),
        sa.Column("report", sa.JSON(), nullable=False),
        sa.Column(
            "created", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["collection_id"],
            ["collections.id"],
            name=op.f("fk_open_set_calibrations_collection_id_collections"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_open_set_calibrations")),
    )
    op.create_index(
        op.f("ix_open_set_calibrations_collection_id_id"),
        "open_set_calibrations",
        ["collection_id", "id"],
    )


def downgrade() -> None:
    op.drop_index(
        op.f("ix_open_set_calibrations_collection_id_id"), table_name="open_set_calibrations"
    )
    op.drop_table("open_set_calibrations")
    with op.batch_alter_table("collections") as batch:
        batch.drop_column("target_fpir")
