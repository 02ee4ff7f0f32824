"""Every table, imported in one place so that Alembic sees the whole schema."""

from registry.accounts.models import ApiToken, LoginEvent, LoginSession, LoginThrottle, User
from registry.audit_jobs.models import AuditJob
from registry.cities.models import City
from registry.decision_log.models import LogCheckpoint, LogEntry, LogHead, LogNode
from registry.decisions.models import Decision
from registry.filings.models import Attachment, Comment, Filing, FilingNumberSequence, FilingTransition
from registry.idempotency import IdempotencyRecord
from registry.library.concern_models import Concern
from registry.library.search import LibrarySearch
from registry.notifications.models import Notification, OutboxEmail
from registry.reference_data.models import ReferenceDataset
from registry.storage.models import StoredFile

__all__ = [
    "ApiToken",
    "Attachment",
    "AuditJob",
    "City",
    "Comment",
    "Concern",
    "Decision",
    "Filing",
    "FilingNumberSequence",
    "FilingTransition",
    "IdempotencyRecord",
    "LibrarySearch",
    "LogCheckpoint",
    "LogEntry",
    "LogHead",
    "LogNode",
    "LoginEvent",
    "LoginSession",
    "LoginThrottle",
    "Notification",
    "OutboxEmail",
    "ReferenceDataset",
    "StoredFile",
    "User",
]
