"""Column types shared by the domain models."""

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

# JSONB on PostgreSQL (indexable, compact), plain JSON text elsewhere.
JSONDocument = sa.JSON().with_variant(JSONB(), "postgresql")
