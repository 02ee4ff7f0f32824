"""Inbox rows (one per account and event) and the e-mail outbox (one row per e-mail to send)."""

from datetime import datetime
from enum import StrEnum

from sqlmodel import Field, SQLModel

from registry.db import UTCDateTime, utcnow
from registry.types import JSONDocument


class Notification(SQLModel, table=True):
    """Something an account should know about. The text is not stored: ``kind`` and ``params`` are, and the text
    is rendered in the reader's language when it is shown (registry.notifications.texts)."""

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user.id", index=True)
    kind: str = Field(max_length=40)
    filing_id: int | None = Field(default=None, foreign_key="filing.id", index=True)
    link: str = Field(max_length=300)  # a path inside the registry, e.g. /filings/7#comments
    params: dict = Field(default_factory=dict, sa_type=JSONDocument)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    read_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class EmailState(StrEnum):
    PENDING = "pending"  # waiting to be sent (again, after ``next_attempt_at``)
    SENDING = "sending"  # claimed by one sender until ``claimed_until``
    SENT = "sent"
    FAILED = "failed"  # gave up after ``max_attempts``


class OutboxEmail(SQLModel, table=True):
    """One e-mail to send, written in the transaction of the event it tells about and sent after the commit."""

    __tablename__ = "email_outbox"

    id: int | None = Field(default=None, primary_key=True)
    notification_id: int | None = Field(default=None, foreign_key="notification.id", index=True)
    recipient: str = Field(max_length=254)
    subject: str = Field(max_length=500)
    body: str = Field(max_length=20000)
    state: str = Field(default=EmailState.PENDING, max_length=16, index=True)
    attempts: int = 0
    max_attempts: int = 5
    next_attempt_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    claimed_by: str | None = Field(default=None, max_length=200)
    claimed_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_error: str | None = Field(default=None, max_length=2000)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    sent_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
