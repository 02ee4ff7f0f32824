"""The public library's search index (bigram tokens, FTS5 on SQLite, GIN tsvector on PostgreSQL).

Revision ID: 8b1d5e3f7a90
Revises: 7a9c4d2e5f60
Create Date: 2026-11-23 17:30:00.000000

One row per public filing (registry.library.search.LibrarySearch): its tokens and the columns the list filters
and sorts on. The full-text index over the tokens depends on the database and is not in the models
(migrations/env.py leaves it out of `alembic check`): on SQLite an FTS5 table with the rows as external content,
kept in step by triggers; on PostgreSQL a stored generated column to_tsvector('simple', tokens) with a GIN index
(stored, so that neither the recheck nor the ranking parses the tokens again). The table starts empty:
run `registry library reindex` once on a registry that already has decisions.
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

import registry.db

revision = "8b1d5e3f7a90"
down_revision = "7a9c4d2e5f60"
branch_labels = None
depends_on = None

FTS = "library_search_fts"
TSVECTOR_COLUMN = "search_vector"
TSVECTOR_INDEX = "ix_library_search_search_vector"
# The columns the library filters and sorts on, each with its index.
INDEXED = ("state", "city_code", "scenario", "risk_tier", "outcome", "decided_at", "name_zh", "name_en")


def upgrade() -> None:
    op.create_table(
        "library_search",
        sa.Column("filing_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("tokens", sa.Text(), nullable=False),
        sa.Column("state", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("city_code", sqlmodel.sql.sqltypes.AutoString(length=6), nullable=False),
        sa.Column("scenario", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
        sa.Column("risk_tier", sqlmodel.sql.sqltypes.AutoString(length=3), nullable=True),
        sa.Column("outcome", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column("decided_at", registry.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("name_zh", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("name_en", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.ForeignKeyConstraint(["filing_id"], ["filing.id"]),
        sa.PrimaryKeyConstraint("filing_id"),
    )
    with op.batch_alter_table("library_search", schema=None) as batch_op:
        for column in INDEXED:
            batch_op.create_index(batch_op.f(f"ix_library_search_{column}"), [column], unique=False)
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            f"ALTER TABLE library_search ADD COLUMN {TSVECTOR_COLUMN} tsvector "
            "GENERATED ALWAYS AS (to_tsvector('simple'::regconfig, tokens)) STORED"
        )
        op.execute(f"CREATE INDEX {TSVECTOR_INDEX} ON library_search USING gin ({TSVECTOR_COLUMN})")
        return
    # The tokens are already split by registry.library.search: the tokenizer only has to cut at the spaces.
    op.execute(
        f"CREATE VIRTUAL TABLE {FTS} USING fts5(tokens, content='library_search', content_rowid='filing_id', "
        "tokenize='unicode61 remove_diacritics 0')"
    )
    op.execute(
        "CREATE TRIGGER library_search_fts_insert AFTER INSERT ON library_search BEGIN "
        "INSERT INTO library_search_fts(rowid, tokens) VALUES (new.filing_id, new.tokens); END"
    )
    op.execute(
        "CREATE TRIGGER library_search_fts_delete AFTER DELETE ON library_search BEGIN "
        "INSERT INTO library_search_fts(library_search_fts, rowid, tokens) "
        "VALUES ('delete', old.filing_id, old.tokens); END"
    )
    op.execute(
        "CREATE TRIGGER library_search_fts_update AFTER UPDATE ON library_search BEGIN "
        "INSERT INTO library_search_fts(library_search_fts, rowid, tokens) "
        "VALUES ('delete', old.filing_id, old.tokens); "
        "INSERT INTO library_search_fts(rowid, tokens) VALUES (new.filing_id, new.tokens); END"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP INDEX IF EXISTS {TSVECTOR_INDEX}")
        op.execute(f"ALTER TABLE library_search DROP COLUMN IF EXISTS {TSVECTOR_COLUMN}")
    else:
        for trigger in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER IF EXISTS library_search_fts_{trigger}")
        op.execute(f"DROP TABLE IF EXISTS {FTS}")
    with op.batch_alter_table("library_search", schema=None) as batch_op:
        for column in reversed(INDEXED):
            batch_op.drop_index(batch_op.f(f"ix_library_search_{column}"))
    op.drop_table("library_search")
