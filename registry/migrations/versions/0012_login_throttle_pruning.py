"""An index for forgetting stale login failures.

Revision ID: c6e03a4f0012
Revises: b5d92f3e0011
Create Date: 2026-12-07 01:20:00.000000

``login_throttle`` has a row per user name ever tried, known or not, so that unknown names lock as real ones do.
Each attempt now also removes a batch of rows whose last attempt is more than a day old and that are not locked
(registry.accounts.lockout): this index finds them without reading the table.
"""

from alembic import op

revision = "c6e03a4f0012"
down_revision = "b5d92f3e0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("login_throttle", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_login_throttle_updated_at"), ["updated_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("login_throttle", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_login_throttle_updated_at"))
