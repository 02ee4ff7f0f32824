"""Concerns that members of the public raise about a library entry (the table ``concern``)."""

from datetime import datetime
from enum import StrEnum

from sqlmodel import Field, SQLModel

from registry.db import UTCDateTime, utcnow

REFERENCE_PREFIX = "意见"  # “concern”, in the style of the filing numbers (豫算备…)


class ConcernStatus(StrEnum):
    NEW = "new"  # nobody at the province has looked at it yet
    SEEN = "seen"  # a reviewer has read it
    ANSWERED = "answered"  # a reviewer has dealt with it (answered the person, or acted on the filing)


class Concern(SQLModel, table=True):
    """A problem reported by anyone about a public filing, without an account. Hostile input: shown escaped.

    ``contact`` (an e-mail address or telephone number, optional) is for reviewers only and never public; nothing
    about the sender's connection (address, browser) is stored.
    """

    id: int | None = Field(default=None, primary_key=True)
    filing_id: int = Field(foreign_key="filing.id", index=True)
    code: str = Field(max_length=8)  # the unguessable part of the reference
    body: str = Field(max_length=4000)
    contact: str | None = Field(default=None, max_length=200)
    affected: bool = False  # “I am affected by a decision this algorithm took part in”
    language: str = Field(default="zh", max_length=8)  # the language the person wrote in (zh or en)
    status: str = Field(default=ConcernStatus.NEW, max_length=16, index=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    status_changed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    status_changed_by_id: int | None = Field(default=None, foreign_key="user.id")

    @property
    def reference(self) -> str:
        """What the person is given, e.g. ``意见-2026-000123-7KQF``: the year, the running number and a code."""
        return f"{REFERENCE_PREFIX}-{self.created_at.year}-{self.id:06d}-{self.code}"
