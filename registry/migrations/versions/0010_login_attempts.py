"""Password guessing: the login trail (append-only) and the lockout count per user name tried.

Revision ID: a4c81e2d0010
Revises: 9c2e6f4a8b01
Create Date: 2026-11-23 19:40:00.000000
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

import registry.db

revision = "a4c81e2d0010"
down_revision = "9c2e6f4a8b01"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "login_throttle",
        sa.Column("username", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("locked_until", registry.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("updated_at", registry.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("username"),
    )
    op.create_table(
        "login_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created_at", registry.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("outcome", sa.String(length=32), nullable=False),
        sa.Column("username", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("client_address", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("user_agent", sqlmodel.sql.sqltypes.AutoString(length=256), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["user.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("login_event", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_login_event_created_at"), ["created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_login_event_outcome"), ["outcome"], unique=False)
        batch_op.create_index(batch_op.f("ix_login_event_user_id"), ["user_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_login_event_username"), ["username"], unique=False)
    _append_only("login_event")


# Like the lifecycle trail (0001): nothing in the app can edit or remove a login event. Copied, not imported
# (migrations stay independent); the PostgreSQL function is 0001's, re-created unchanged in case it is missing.
def _append_only(table: str) -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            """
            CREATE OR REPLACE FUNCTION registry_refuse_change() RETURNS trigger AS $$
            BEGIN
                RAISE EXCEPTION 'table % is append-only', TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
            END;
            $$ LANGUAGE plpgsql
            """
        )
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
    _drop_append_only("login_event")
    with op.batch_alter_table("login_event", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_login_event_username"))
        batch_op.drop_index(batch_op.f("ix_login_event_user_id"))
        batch_op.drop_index(batch_op.f("ix_login_event_outcome"))
        batch_op.drop_index(batch_op.f("ix_login_event_created_at"))
    op.drop_table("login_event")
    op.drop_table("login_throttle")
