"""Every table, imported in one place so that Alembic sees the whole schema."""

from registry.accounts.models import ApiToken, LoginSession, User
from registry.cities.models import City
from registry.filings.models import Attachment, Comment, Filing, FilingNumberSequence, FilingTransition
from registry.idempotency import IdempotencyRecord
from registry.storage.models import StoredFile

__all__ = [
    "ApiToken",
    "Attachment",
    "City",
    "Comment",
    "Filing",
    "FilingNumberSequence",
    "FilingTransition",
    "IdempotencyRecord",
    "LoginSession",
    "StoredFile",
    "User",
]
