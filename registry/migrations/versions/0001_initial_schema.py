"""Initial schema: cities, accounts, filings, their append-only trail, comments, files, idempotency records.

Revision ID: 022145d88778
Revises:
Create Date: 2026-11-23 14:15:28.747643
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

import registry.db

revision = "022145d88778"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "city",
        sa.Column("code", sqlmodel.sql.sqltypes.AutoString(length=6), nullable=False),
        sa.Column("name_zh", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("name_en", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("province_code", sqlmodel.sql.sqltypes.AutoString(length=6), nullable=False),
        sa.PrimaryKeyConstraint("code"),
    )
    op.create_table(
        "stored_file",
        sa.Column("sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("media_type", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("created_at", registry.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("sha256"),
    )
    op.create_table(
        "filing_number_sequence",
        sa.Column("city_code", sqlmodel.sql.sqltypes.AutoString(length=6), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("last", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["city_code"],
            ["city.code"],
        ),
        sa.PrimaryKeyConstraint("city_code", "year"),
    )
    op.create_table(
        "user",
        sa.Column("username", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("display_name", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("city_code", sqlmodel.sql.sqltypes.AutoString(length=6), nullable=True),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email", sqlmodel.sql.sqltypes.AutoString(length=254), nullable=True),
        sa.Column("password_hash", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", registry.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["city_code"],
            ["city.code"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("user", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_user_username"), ["username"], unique=True)

    op.create_table(
        "api_token",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("prefix", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("label", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("created_at", registry.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", registry.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", registry.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
    )
    with op.batch_alter_table("api_token", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_api_token_user_id"), ["user_id"], unique=False)

    op.create_table(
        "filing",
        sa.Column("city_code", sqlmodel.sql.sqltypes.AutoString(length=6), nullable=False),
        sa.Column("state", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("algorithm_name_zh", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("algorithm_name_en", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("algorithm_version", sqlmodel.sql.sqltypes.AutoString(length=50), nullable=False),
        sa.Column("scenario", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
        sa.Column("risk_tier", sqlmodel.sql.sqltypes.AutoString(length=3), nullable=True),
        sa.Column("filing_number", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
        sa.Column("supersedes_id", sa.Integer(), nullable=True),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column(
            "technical_document",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "test_report", sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"), nullable=True
        ),
        sa.Column(
            "risk_assessment", sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"), nullable=True
        ),
        sa.Column("model_sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("created_by_id", sa.Integer(), nullable=False),
        sa.Column("created_at", registry.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", registry.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("submitted_at", registry.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("decided_at", registry.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["city_code"],
            ["city.code"],
        ),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["user.id"],
        ),
        sa.ForeignKeyConstraint(
            ["model_sha256"],
            ["stored_file.sha256"],
        ),
        sa.ForeignKeyConstraint(
            ["supersedes_id"],
            ["filing.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("filing_number"),
    )
    with op.batch_alter_table("filing", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_filing_city_code"), ["city_code"], unique=False)
        batch_op.create_index(batch_op.f("ix_filing_risk_tier"), ["risk_tier"], unique=False)
        batch_op.create_index(batch_op.f("ix_filing_scenario"), ["scenario"], unique=False)
        batch_op.create_index(batch_op.f("ix_filing_state"), ["state"], unique=False)

    op.create_table(
        "idempotency_record",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("key", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("operation", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("request_sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column(
            "response", sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"), nullable=False
        ),
        sa.Column("created_at", registry.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("user_id", "key"),
    )
    op.create_table(
        "login_session",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("created_at", registry.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", registry.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ended_at", registry.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("login_session", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_login_session_user_id"), ["user_id"], unique=False)

    op.create_table(
        "attachment",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("filing_id", sa.Integer(), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("filename", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=False),
        sa.Column("created_at", registry.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["user.id"],
        ),
        sa.ForeignKeyConstraint(
            ["filing_id"],
            ["filing.id"],
        ),
        sa.ForeignKeyConstraint(
            ["sha256"],
            ["stored_file.sha256"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("attachment", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_attachment_filing_id"), ["filing_id"], unique=False)

    op.create_table(
        "comment",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("filing_id", sa.Integer(), nullable=False),
        sa.Column("author_id", sa.Integer(), nullable=False),
        sa.Column("author_role", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("body", sqlmodel.sql.sqltypes.AutoString(length=10000), nullable=False),
        sa.Column("reviewer_only", sa.Boolean(), nullable=False),
        sa.Column("created_at", registry.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["author_id"],
            ["user.id"],
        ),
        sa.ForeignKeyConstraint(
            ["filing_id"],
            ["filing.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("comment", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_comment_filing_id"), ["filing_id"], unique=False)

    op.create_table(
        "filing_transition",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("filing_id", sa.Integer(), nullable=False),
        sa.Column("action", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("from_state", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column("to_state", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("actor_id", sa.Integer(), nullable=True),
        sa.Column("actor_role", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("reason", sqlmodel.sql.sqltypes.AutoString(length=4000), nullable=False),
        sa.Column("at", registry.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["actor_id"],
            ["user.id"],
        ),
        sa.ForeignKeyConstraint(
            ["filing_id"],
            ["filing.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("filing_transition", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_filing_transition_filing_id"), ["filing_id"], unique=False)
    _append_only("filing_transition")


# The lifecycle trail is append-only: nothing in the app can edit or remove a step (DESIGN.md).
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
    _drop_append_only("filing_transition")
    with op.batch_alter_table("filing_transition", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_filing_transition_filing_id"))

    op.drop_table("filing_transition")
    with op.batch_alter_table("comment", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_comment_filing_id"))

    op.drop_table("comment")
    with op.batch_alter_table("attachment", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_attachment_filing_id"))

    op.drop_table("attachment")
    with op.batch_alter_table("login_session", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_login_session_user_id"))

    op.drop_table("login_session")
    op.drop_table("idempotency_record")
    with op.batch_alter_table("filing", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_filing_state"))
        batch_op.drop_index(batch_op.f("ix_filing_scenario"))
        batch_op.drop_index(batch_op.f("ix_filing_risk_tier"))
        batch_op.drop_index(batch_op.f("ix_filing_city_code"))

    op.drop_table("filing")
    with op.batch_alter_table("api_token", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_token_user_id"))

    op.drop_table("api_token")
    with op.batch_alter_table("user", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_user_username"))

    op.drop_table("user")
    op.drop_table("filing_number_sequence")
    op.drop_table("stored_file")
    op.drop_table("city")
