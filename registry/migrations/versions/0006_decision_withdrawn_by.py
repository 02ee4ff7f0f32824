"""Who withdrew a proposed decision (or refused to countersign it), and when.

Revision ID: 6f8b3c1e2d47
Revises: 5e7a2b0d9c11
Create Date: 2026-11-24 10:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

import registry.db

revision = "6f8b3c1e2d47"
down_revision = "5e7a2b0d9c11"
branch_labels = None
depends_on = None

FOREIGN_KEY = "fk_decision_withdrawn_by_id_user"

# Decisions withdrawn before this revision: the withdrawal left a reviewer-only comment on the filing's thread,
# "Proposal withdrawn (decision N): …" or "Countersignature refused (decision N): …", signed and dated; take the
# who and when from the latest such comment.
_BY_COMMENT = (
    "FROM comment WHERE comment.filing_id = decision.filing_id "
    "AND (comment.body LIKE 'Proposal withdrawn (decision ' || decision.id || '):%' "
    "OR comment.body LIKE 'Countersignature refused (decision ' || decision.id || '):%') "
    "ORDER BY comment.id DESC LIMIT 1"
)


def upgrade() -> None:
    with op.batch_alter_table("decision", schema=None) as batch_op:
        batch_op.add_column(sa.Column("withdrawn_by_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("withdrawn_at", registry.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.create_foreign_key(FOREIGN_KEY, "user", ["withdrawn_by_id"], ["id"])
    op.execute(
        f"UPDATE decision SET withdrawn_by_id = (SELECT comment.author_id {_BY_COMMENT}), "  # noqa: S608 - constant SQL
        f"withdrawn_at = (SELECT comment.created_at {_BY_COMMENT}) WHERE decision.state = 'withdrawn'"
    )


def downgrade() -> None:
    with op.batch_alter_table("decision", schema=None) as batch_op:
        batch_op.drop_constraint(FOREIGN_KEY, type_="foreignkey")
        batch_op.drop_column("withdrawn_at")
        batch_op.drop_column("withdrawn_by_id")
