"""Reference data sets uploaded by an administrator (descriptor and stored file).

Revision ID: 5e7a2b0d9c11
Revises: 4d0e1f1ca7e5
Create Date: 2026-11-23 16:40:00.000000
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

import registry.db

revision = "5e7a2b0d9c11"
down_revision = "4d0e1f1ca7e5"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "reference_dataset",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column(
            "descriptor", sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"), nullable=False
        ),
        sa.Column("sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("uploaded_by_id", sa.Integer(), nullable=False),
        sa.Column("uploaded_at", registry.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("retired_at", registry.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("retired_by_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["sha256"], ["stored_file.sha256"]),
        sa.ForeignKeyConstraint(["uploaded_by_id"], ["user.id"]),
        sa.ForeignKeyConstraint(["retired_by_id"], ["user.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("reference_dataset", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_reference_dataset_name"), ["name"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("reference_dataset", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_reference_dataset_name"))
    op.drop_table("reference_dataset")
