"""The durable job table: one row per audit a reviewer starts (or the re-audit schedule queues)."""

from datetime import datetime
from enum import StrEnum

from sqlmodel import Field, SQLModel

from registry.db import UTCDateTime, utcnow
from registry.types import JSONDocument


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class AuditJob(SQLModel, table=True):
    __tablename__ = "audit_job"

    id: int | None = Field(default=None, primary_key=True)
    filing_id: int = Field(foreign_key="filing.id", index=True)
    state: str = Field(default=JobState.QUEUED, max_length=16, index=True)
    dataset: str = Field(max_length=100)  # a reference data set of the engine's library
    sensitive_attributes: list = Field(default_factory=list, sa_type=JSONDocument)
    tier: str = Field(max_length=3)
    model_sha256: str = Field(foreign_key="stored_file.sha256", max_length=64)
    seed: int = 0
    replicates: int = 1000
    requested_by_id: int | None = Field(default=None, foreign_key="user.id")
    reason: str = Field(default="review", max_length=32)  # review | reaudit
    progress: float = 0.0  # 0..1
    attempts: int = 0
    max_attempts: int = 3
    worker: str | None = Field(default=None, max_length=200)
    lease_until: datetime | None = Field(
        default=None, sa_type=UTCDateTime
    )  # a running job whose lease lapses is retried
    error: str | None = Field(default=None, max_length=4000)
    report_sha256: str | None = Field(default=None, foreign_key="stored_file.sha256", max_length=64)
    verdict: str | None = Field(default=None, max_length=16)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    started_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
