"""Filings, their append-only transition trail, comments, attachments and filing-number sequences."""

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from registry.db import UTCDateTime, utcnow
from registry.types import JSONDocument


class FilingBase(SQLModel):
    city_code: str = Field(foreign_key="city.code", max_length=6, index=True)
    state: str = Field(max_length=32, index=True)
    algorithm_name_zh: str = Field(default="", max_length=200)
    algorithm_name_en: str = Field(default="", max_length=200)
    algorithm_version: str = Field(default="", max_length=50)
    scenario: str | None = Field(default=None, max_length=40, index=True)
    risk_tier: str | None = Field(default=None, max_length=3, index=True)
    filing_number: str | None = Field(default=None, max_length=40, unique=True)
    supersedes_id: int | None = Field(default=None, foreign_key="filing.id", index=True)  # the newer version's lookup


_revision = sa.Column("revision", sa.Integer, nullable=False, default=1)


class Filing(FilingBase, table=True):
    id: int | None = Field(default=None, primary_key=True)
    technical_document: dict = Field(default_factory=dict, sa_type=JSONDocument)
    test_report: dict | None = Field(default=None, sa_type=JSONDocument)
    risk_assessment: dict | None = Field(default=None, sa_type=JSONDocument)
    model_sha256: str | None = Field(default=None, foreign_key="stored_file.sha256", max_length=64)
    created_by_id: int = Field(foreign_key="user.id")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    submitted_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    decided_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # When the filing's periodic re-audit falls due (from its tier's policy; None: tier I, or not decided).
    next_audit_due: datetime | None = Field(default=None, sa_type=UTCDateTime, index=True)
    # Optimistic locking: two requests that change the same filing at once cannot both win.
    revision: int = Field(default=1, sa_column=_revision)

    __mapper_args__ = {"version_id_col": _revision}


class FilingTransition(SQLModel, table=True):
    """One step of a filing's lifecycle. Append-only: database triggers refuse UPDATE and DELETE."""

    __tablename__ = "filing_transition"

    id: int | None = Field(default=None, primary_key=True)
    filing_id: int = Field(foreign_key="filing.id", index=True)
    action: str = Field(max_length=32)
    from_state: str | None = Field(default=None, max_length=32)
    to_state: str = Field(max_length=32)
    actor_id: int | None = Field(default=None, foreign_key="user.id")
    actor_role: str = Field(max_length=16)
    reason: str = Field(default="", max_length=4000)
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Comment(SQLModel, table=True):
    """A message on a filing's thread; reviewer-only notes are never shown to the city team."""

    id: int | None = Field(default=None, primary_key=True)
    filing_id: int = Field(foreign_key="filing.id", index=True)
    author_id: int = Field(foreign_key="user.id")
    author_role: str = Field(max_length=16)
    body: str = Field(max_length=10000)
    reviewer_only: bool = False
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Attachment(SQLModel, table=True):
    """A stored file attached to a filing (the model, or a supporting document)."""

    id: int | None = Field(default=None, primary_key=True)
    filing_id: int = Field(foreign_key="filing.id", index=True)
    kind: str = Field(max_length=32)
    sha256: str = Field(foreign_key="stored_file.sha256", max_length=64)
    filename: str = Field(max_length=255)
    size: int
    created_by_id: int = Field(foreign_key="user.id")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class FilingNumberSequence(SQLModel, table=True):
    """The last sequence number issued per city and year, so a filing number is never reused."""

    __tablename__ = "filing_number_sequence"

    city_code: str = Field(foreign_key="city.code", primary_key=True, max_length=6)
    year: int = Field(primary_key=True)
    last: int = 0
