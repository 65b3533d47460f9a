"""initial schema: collections, identities, faces, index_log, jobs, calibrations, api_keys

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _created() -> sa.Column:
    return sa.Column(
        "created", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
    )


def upgrade() -> None:
    op.create_table(
        "collections",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("tenant", sa.String(64), server_default="default", nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("model_version", sa.String(64), nullable=False),
        sa.Column("dim", sa.Integer(), nullable=False),
        sa.Column("metric", sa.String(16), server_default="cosine", nullable=False),
        sa.Column("threshold", sa.Float(), nullable=True),
        _created(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_collections")),
        sa.UniqueConstraint("tenant", "name", name=op.f("uq_collections_tenant_name")),
    )
    op.create_table(
        "identities",
        sa.Column("id", BigId, nullable=False),
        sa.Column("collection_id", sa.Integer(), nullable=False),
        sa.Column("external_id", sa.String(255), nullable=False),
        sa.Column("name", sa.String(255), nullable=True),
        sa.Column("metadata", sa.JSON(), nullable=False),
        _created(),
        sa.Column("deleted", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.ForeignKeyConstraint(
            ["collection_id"],
            ["collections.id"],
            name=op.f("fk_identities_collection_id_collections"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_identities")),
        sa.UniqueConstraint(
            "collection_id", "external_id", name=op.f("uq_identities_collection_id_external_id")
        ),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "faces",
        sa.Column("id", BigId, nullable=False),
        sa.Column("identity_id", sa.BigInteger(), nullable=False),
        sa.Column("collection_id", sa.Integer(), nullable=False),
        sa.Column("image_sha256", sa.String(64), nullable=False),
        sa.Column("face_index", sa.Integer(), nullable=False),
        sa.Column("bbox", sa.JSON(), nullable=False),
        sa.Column("landmarks", sa.JSON(), nullable=False),
        sa.Column("det_score", sa.Float(), nullable=False),
        sa.Column("quality", sa.Float(), nullable=True),
        sa.Column("embedding", sa.LargeBinary(), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        _created(),
        sa.ForeignKeyConstraint(
            ["collection_id"],
            ["collections.id"],
            name=op.f("fk_faces_collection_id_collections"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["identity_id"],
            ["identities.id"],
            name=op.f("fk_faces_identity_id_identities"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_faces")),
        sa.UniqueConstraint(
            "identity_id",
            "image_sha256",
            "face_index",
            name=op.f("uq_faces_identity_id_image_sha256_face_index"),
        ),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_faces_collection_id_id"), "faces", ["collection_id", "id"])
    op.create_table(
        "index_log",
        sa.Column("seq", BigId, nullable=False),
        sa.Column("collection_id", sa.Integer(), nullable=False),
        sa.Column("face_id", sa.BigInteger(), nullable=False),
        sa.Column("op", sa.String(8), nullable=False),
        _created(),
        sa.CheckConstraint("op IN ('add', 'remove')", name=op.f("ck_index_log_op")),
        sa.ForeignKeyConstraint(
            ["collection_id"],
            ["collections.id"],
            name=op.f("fk_index_log_collection_id_collections"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_index_log")),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_index_log_collection_id_seq"), "index_log", ["collection_id", "seq"])
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), server_default="pending", nullable=False),
        sa.Column("progress", sa.Float(), server_default="0", nullable=False),
        sa.Column("counts", sa.JSON(), nullable=False),
        sa.Column("errors", sa.JSON(), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        _created(),
        sa.Column("started", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
    )
    op.create_index(op.f("ix_jobs_status_created"), "jobs", ["status", "created"])
    op.create_table(
        "calibrations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("dataset", sa.String(200), nullable=False),
        sa.Column("collection_id", sa.Integer(), nullable=True),
        sa.Column("target_far", sa.Float(), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=False),
        sa.Column("tar", sa.Float(), nullable=False),
        sa.Column("n_pairs", sa.Integer(), nullable=False),
        sa.Column("report", sa.JSON(), nullable=False),
        _created(),
        sa.ForeignKeyConstraint(
            ["collection_id"],
            ["collections.id"],
            name=op.f("fk_calibrations_collection_id_collections"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_calibrations")),
    )
    op.create_index(op.f("ix_calibrations_model_dataset"), "calibrations", ["model", "dataset"])
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key_hash", sa.String(128), nullable=False),
        sa.Column("tenant", sa.String(64), server_default="default", nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("name", sa.String(255), nullable=True),
        _created(),
        sa.Column("revoked", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_keys_key_hash")),
    )


def downgrade() -> None:
    op.drop_table("api_keys")
    op.drop_index(op.f("ix_calibrations_model_dataset"), table_name="calibrations")
    op.drop_table("calibrations")
    op.drop_index(op.f("ix_jobs_status_created"), table_name="jobs")
    op.drop_table("jobs")
    op.drop_index(op.f("ix_index_log_collection_id_seq"), table_name="index_log")
    op.drop_table("index_log")
    op.drop_index(op.f("ix_faces_collection_id_id"), table_name="faces")
    op.drop_table("faces")
    op.drop_table("identities")
    op.drop_table("collections")
