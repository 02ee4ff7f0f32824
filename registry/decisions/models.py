"""Decisions on filings: a proposal, and (for tiers III and IV) a second reviewer's countersignature."""

from datetime import datetime
from enum import StrEnum

from sqlmodel import Field, SQLModel

from registry.db import UTCDateTime, utcnow
from registry.types import JSONDocument


class Outcome(StrEnum):
    APPROVED = "approved"
    APPROVED_WITH_CONDITIONS = "approved_with_conditions"
    REJECTED = "rejected"


class DecisionState(StrEnum):
    PROPOSED = "proposed"  # waiting for a countersignature (tiers III and IV)
    EFFECTIVE = "effective"  # taken: the filing's state has changed
    WITHDRAWN = "withdrawn"  # the proposer took it back, or a countersigner refused it


class Decision(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    filing_id: int = Field(foreign_key="filing.id", index=True)
    outcome: str = Field(max_length=32)
    state: str = Field(default=DecisionState.PROPOSED, max_length=16, index=True)
    conditions: list = Field(default_factory=list, sa_type=JSONDocument)
    reasons: list = Field(default_factory=list, sa_type=JSONDocument)
    audit_job_ids: list = Field(default_factory=list, sa_type=JSONDocument)  # the audits it rests on
    audit_report_sha256: list = Field(default_factory=list, sa_type=JSONDocument)
    tier: str = Field(max_length=3)
    proposed_by_id: int = Field(foreign_key="user.id")
    proposed_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    countersigned_by_id: int | None = Field(default=None, foreign_key="user.id")
    countersigned_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    effective_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # Who withdrew the proposal (its proposer) or refused to countersign it (another reviewer), and when.
    withdrawn_by_id: int | None = Field(default=None, foreign_key="user.id")
    withdrawn_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    filing_number: str | None = Field(default=None, max_length=40)
    note: str = Field(default="", max_length=4000)
