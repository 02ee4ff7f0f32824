"""The decision log: entries (leaves), stored Merkle nodes, signed checkpoints — append-only — and the head row.

Revision ID: 7a9c4d2e5f60
Revises: 6f8b3c1e2d47
Create Date: 2026-11-23 17:00:00.000000
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

import registry.db

revision = "7a9c4d2e5f60"
down_revision = "6f8b3c1e2d47"
branch_labels = None
depends_on = None

APPEND_ONLY = ("log_entry", "log_node", "log_checkpoint")


def upgrade() -> None:
    op.create_table(
        "log_entry",
        sa.Column("index", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("leaf", sa.LargeBinary(), nullable=False),
        sa.Column("leaf_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("filing_id", sa.Integer(), nullable=False),
        sa.Column("transition_id", sa.Integer(), nullable=False),
        sa.Column("decision_id", sa.Integer(), nullable=True),
        sa.Column("created_at", registry.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["decision_id"], ["decision.id"]),
        sa.ForeignKeyConstraint(["filing_id"], ["filing.id"]),
        sa.ForeignKeyConstraint(["transition_id"], ["filing_transition.id"]),
        sa.PrimaryKeyConstraint("index"),
        sa.UniqueConstraint("leaf_hash"),
        sa.UniqueConstraint("transition_id"),
    )
    with op.batch_alter_table("log_entry", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_log_entry_decision_id"), ["decision_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_log_entry_filing_id"), ["filing_id"], unique=False)
    op.create_table(
        "log_node",
        sa.Column("level", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("index", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("hash", sa.LargeBinary(length=32), nullable=False),
        sa.PrimaryKeyConstraint("level", "index"),
    )
    op.create_table(
        "log_checkpoint",
        sa.Column("tree_size", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("root_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_at", registry.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tree_size"),
    )
    op.create_table(
        "log_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("tree_size", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.execute("INSERT INTO log_head (id, tree_size) VALUES (1, 0)")
    for table in APPEND_ONLY:
        _append_only(table)


# Like the lifecycle trail (0001): nothing in the app can edit or remove an entry, a node or a checkpoint.
def _append_only(table: str) -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION registry_refuse_change()"
        )
    else:
        for event in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {table}_no_{event.lower()} BEFORE {event} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"
            )


def _drop_append_only(table: str) -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
    else:
        for event in ("update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_{event}")


def downgrade() -> None:
    for table in APPEND_ONLY:
        _drop_append_only(table)
    op.drop_table("log_head")
    op.drop_table("log_checkpoint")
    op.drop_table("log_node")
    with op.batch_alter_table("log_entry", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_log_entry_filing_id"))
        batch_op.drop_index(batch_op.f("ix_log_entry_decision_id"))
    op.drop_table("log_entry")
