"""Idempotency-Key records: a retried create or submit returns the first answer and files nothing twice."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, Session, SQLModel, select

from registry.db import UTCDateTime, utcnow
from registry.errors import Conflict, Unprocessable
from registry.types import JSONDocument


class IdempotencyRecord(SQLModel, table=True):
    __tablename__ = "idempotency_record"
    __table_args__ = (sa.UniqueConstraint("user_id", "key"),)

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user.id")
    key: str = Field(max_length=255)
    operation: str = Field(max_length=200)
    request_sha256: str = Field(max_length=64)
    status_code: int
    response: dict = Field(sa_type=JSONDocument)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


def fingerprint(operation: str, body: bytes) -> str:
    return hashlib.sha256(operation.encode() + b"\0" + body).hexdigest()


def find(*, session: Session, user_id: int, key: str, operation: str, request_sha256: str) -> IdempotencyRecord | None:
    """The stored answer for a retried request, or None for a new key.

    Raises Unprocessable when the key was used for a different request (another operation or body).
    """
    record = session.exec(
        select(IdempotencyRecord).where(IdempotencyRecord.user_id == user_id, IdempotencyRecord.key == key)
    ).first()
    if record is None:
        return None
    if record.operation != operation or record.request_sha256 != request_sha256:
        raise Unprocessable(
            "This Idempotency-Key was already used for a different request.",
            code="idempotency_key_reused",
            pointer="/headers/Idempotency-Key",
        )
    return record


def remember(
    *, session: Session, user_id: int, key: str, operation: str, request_sha256: str, status_code: int, response: dict
) -> None:
    """Store the answer in the same transaction as the work it describes (both commit or neither)."""
    session.add(
        IdempotencyRecord(
            user_id=user_id,
            key=key,
            operation=operation,
            request_sha256=request_sha256,
            status_code=status_code,
            response=json.loads(json.dumps(response, default=str)),
        )
    )
    try:
        session.flush()
    except sa.exc.IntegrityError as exc:  # the same key raced in from a concurrent request
        raise Conflict(
            "A request with this Idempotency-Key is already being processed.", code="idempotency_key_in_use"
        ) from exc
