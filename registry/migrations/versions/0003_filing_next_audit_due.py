"""Periodic re-audit: when each decided filing's next audit falls due.

Revision ID: 101a4a3072af
Revises: a6508f0a6703
Create Date: 2026-11-23 15:41:27.771189
"""

import sqlalchemy as sa
from alembic import op

import registry.db

revision = "101a4a3072af"
down_revision = "a6508f0a6703"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("filing", schema=None) as batch_op:
        batch_op.add_column(sa.Column("next_audit_due", registry.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f("ix_filing_next_audit_due"), ["next_audit_due"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("filing", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_filing_next_audit_due"))
        batch_op.drop_column("next_audit_due")
