"""Audit jobs (the durable queue) and decisions (proposal and countersignature).

Revision ID: a6508f0a6703
Revises: 022145d88778
Create Date: 2026-11-23 15:15:23.715147
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

import registry.db

revision = "a6508f0a6703"
down_revision = "022145d88778"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_job",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("filing_id", sa.Integer(), nullable=False),
        sa.Column("state", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("dataset", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column(
            "sensitive_attributes",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("tier", sqlmodel.sql.sqltypes.AutoString(length=3), nullable=False),
        sa.Column("model_sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("seed", sa.Integer(), nullable=False),
        sa.Column("replicates", sa.Integer(), nullable=False),
        sa.Column("requested_by_id", sa.Integer(), nullable=True),
        sa.Column("reason", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("progress", sa.Float(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("worker", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column("lease_until", registry.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("error", sqlmodel.sql.sqltypes.AutoString(length=4000), nullable=True),
        sa.Column("report_sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("verdict", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
        sa.Column("created_at", registry.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("started_at", registry.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("finished_at", registry.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["filing_id"],
            ["filing.id"],
        ),
        sa.ForeignKeyConstraint(
            ["model_sha256"],
            ["stored_file.sha256"],
        ),
        sa.ForeignKeyConstraint(
            ["report_sha256"],
            ["stored_file.sha256"],
        ),
        sa.ForeignKeyConstraint(
            ["requested_by_id"],
            ["user.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("audit_job", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_job_filing_id"), ["filing_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_audit_job_state"), ["state"], unique=False)

    op.create_table(
        "decision",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("filing_id", sa.Integer(), nullable=False),
        sa.Column("outcome", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("state", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column(
            "conditions", sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"), nullable=False
        ),
        sa.Column(
            "reasons", sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"), nullable=False
        ),
        sa.Column(
            "audit_job_ids", sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"), nullable=False
        ),
        sa.Column(
            "audit_report_sha256",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("tier", sqlmodel.sql.sqltypes.AutoString(length=3), nullable=False),
        sa.Column("proposed_by_id", sa.Integer(), nullable=False),
        sa.Column("proposed_at", registry.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("countersigned_by_id", sa.Integer(), nullable=True),
        sa.Column("countersigned_at", registry.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("effective_at", registry.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("filing_number", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
        sa.Column("note", sqlmodel.sql.sqltypes.AutoString(length=4000), nullable=False),
        sa.ForeignKeyConstraint(
            ["countersigned_by_id"],
            ["user.id"],
        ),
        sa.ForeignKeyConstraint(
            ["filing_id"],
            ["filing.id"],
        ),
        sa.ForeignKeyConstraint(
            ["proposed_by_id"],
            ["user.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("decision", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_decision_filing_id"), ["filing_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_decision_state"), ["state"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("decision", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_decision_state"))
        batch_op.drop_index(batch_op.f("ix_decision_filing_id"))

    op.drop_table("decision")
    with op.batch_alter_table("audit_job", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_job_state"))
        batch_op.drop_index(batch_op.f("ix_audit_job_filing_id"))

    op.drop_table("audit_job")
