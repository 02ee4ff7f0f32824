"""The decision log's tables. All but ``log_head`` are append-only (database triggers refuse UPDATE and DELETE)."""

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from registry.db import UTCDateTime, utcnow


class LogEntry(SQLModel, table=True):
    """One leaf: the exact canonical JSON bytes of a decision record, and what it records."""

    __tablename__ = "log_entry"

    index: int = Field(primary_key=True, sa_type=sa.BigInteger, sa_column_kwargs={"autoincrement": False})
    leaf: bytes = Field(sa_type=sa.LargeBinary)
    leaf_hash: str = Field(max_length=64, unique=True)  # RFC 6962 leaf hash, hex
    kind: str = Field(max_length=32)  # approved | approved_with_conditions | rejected | suspended | revoked | …
    filing_id: int = Field(foreign_key="filing.id", index=True)
    transition_id: int = Field(foreign_key="filing_transition.id", unique=True)
    decision_id: int | None = Field(default=None, foreign_key="decision.id", index=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class LogNode(SQLModel, table=True):
    """The hash of the complete subtree over leaves [index·2^level, (index+1)·2^level): kept so that appending and
    proving read O(log n) rows instead of rehashing the log."""

    __tablename__ = "log_node"

    level: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    index: int = Field(primary_key=True, sa_type=sa.BigInteger, sa_column_kwargs={"autoincrement": False})
    hash: bytes = Field(sa_type=sa.LargeBinary(32))


class LogCheckpoint(SQLModel, table=True):
    """Every signed checkpoint (C2SP tlog-checkpoint as a C2SP signed note), one per tree size."""

    __tablename__ = "log_checkpoint"

    tree_size: int = Field(primary_key=True, sa_type=sa.BigInteger, sa_column_kwargs={"autoincrement": False})
    root_hash: str = Field(max_length=64)  # hex
    note: str = Field(sa_type=sa.Text)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class LogHead(SQLModel, table=True):
    """One row: the current tree size. Appenders lock it (SELECT … FOR UPDATE), so appends are serialised."""

    __tablename__ = "log_head"

    id: int = Field(default=1, primary_key=True, sa_column_kwargs={"autoincrement": False})
    tree_size: int = Field(default=0, sa_type=sa.BigInteger)
