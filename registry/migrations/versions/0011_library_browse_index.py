"""Indexes for browsing the public library at scale.

Revision ID: b5d92f3e0011
Revises: a4c81e2d0010
Create Date: 2026-11-23 19:40:00.000000

Two composite indexes on ``library_search`` (registry.library.search.LibrarySearch declares them too), each
covering one count the statistics and the standings make on every view: public filings per city and state, and
decisions per month and outcome. Both counts then read an index alone, never the rows with their search tokens.
And ``filing.supersedes_id``: every entry looks for the newer version of its filing (``WHERE supersedes_id = ?``),
which without it read the whole filing table, documents and all.
"""

from alembic import op

revision = "b5d92f3e0011"
down_revision = "a4c81e2d0010"
branch_labels = None
depends_on = None

INDEXES = {
    "ix_library_search_city_code_state": ["city_code", "state"],
    "ix_library_search_decided_at_outcome": ["decided_at", "outcome"],
}


def upgrade() -> None:
    with op.batch_alter_table("library_search", schema=None) as batch_op:
        for name, columns in INDEXES.items():
            batch_op.create_index(name, columns, unique=False)
    with op.batch_alter_table("filing", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_filing_supersedes_id"), ["supersedes_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("filing", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_filing_supersedes_id"))
    with op.batch_alter_table("library_search", schema=None) as batch_op:
        for name in INDEXES:
            batch_op.drop_index(name)
