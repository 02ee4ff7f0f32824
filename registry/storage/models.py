"""The record of each stored file; the bytes live in the content store under their sha256."""

from datetime import datetime

from sqlmodel import Field, SQLModel

from registry.db import UTCDateTime, utcnow


class StoredFile(SQLModel, table=True):
    __tablename__ = "stored_file"

    sha256: str = Field(primary_key=True, min_length=64, max_length=64)
    size: int
    media_type: str = Field(max_length=100)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
