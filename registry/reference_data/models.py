"""An uploaded reference data set: its descriptor, and its data file kept in the content store under its sha256.

The rows themselves are never served: only the descriptor's summary (name, description, size, sensitive
attributes) is shown, to reviewers and administrators. A retired data set stays resolvable by name so that the
audits that used it can still be read and re-run; it is only left out of the choices for new audits.
"""

from datetime import datetime

from sqlmodel import Field, SQLModel

from registry.db import UTCDateTime, utcnow
from registry.types import JSONDocument


class ReferenceDataset(SQLModel, table=True):
    __tablename__ = "reference_dataset"

    id: int | None = Field(default=None, primary_key=True)
    # One namespace with the shipped library (audit jobs store only the name); never reused, even once retired.
    name: str = Field(max_length=100, unique=True, index=True)
    descriptor: dict = Field(sa_type=JSONDocument)  # validates against schemas/reference-dataset.json
    sha256: str = Field(foreign_key="stored_file.sha256", max_length=64)
    rows: int
    uploaded_by_id: int = Field(foreign_key="user.id")
    uploaded_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    active: bool = True  # False: retired, hidden from new audits
    retired_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    retired_by_id: int | None = Field(default=None, foreign_key="user.id")
