"""The login trail: every login attempt, logout and unlock, appended to ``login_event`` and read by administrators."""

from __future__ import annotations

import math
from dataclasses import dataclass

import sqlalchemy as sa
from sqlmodel import Session, select

from registry.accounts.models import LoginEvent, LoginOutcome, User
from registry.db import utcnow

PAGE_SIZE = 50
USER_AGENT_LENGTH = 256
ADDRESS_LENGTH = 64


@dataclass(frozen=True)
class Client:
    """Who is on the other end: the client's address and its User-Agent (either may be unknown)."""

    address: str | None = None
    user_agent: str | None = None


def _cut(text: str | None, length: int) -> str | None:
    return text[:length] if text else None


def user_id_for(*, session: Session, username: str) -> int | None:
    return session.exec(select(User.id).where(User.username == username)).first()


def record(
    *,
    session: Session,
    outcome: LoginOutcome,
    username: str,
    client: Client,
    user_id: int | None = None,
) -> LoginEvent:
    """Append one event (the caller commits). Long names and User-Agents are cut, never refused."""
    event = LoginEvent(
        created_at=utcnow(),
        outcome=LoginOutcome(outcome),
        username=(username or "")[:64],
        user_id=user_id,
        client_address=_cut(client.address, ADDRESS_LENGTH),
        user_agent=_cut(client.user_agent, USER_AGENT_LENGTH),
    )
    session.add(event)
    session.flush()
    return event


@dataclass(frozen=True)
class EventPage:
    rows: list[LoginEvent]
    total: int
    page: int
    pages: int


def parse_outcome(text: str | None) -> LoginOutcome | None:
    """The outcome a filter names, or None for "any" (an unknown value is ignored rather than refused)."""
    try:
        return LoginOutcome(text) if text else None
    except ValueError:
        return None


def events(
    *,
    session: Session,
    username: str | None = None,
    outcome: LoginOutcome | None = None,
    page: int = 1,
    per_page: int = PAGE_SIZE,
) -> EventPage:
    """One page of the trail, the newest first, optionally only for one user name tried and one outcome."""
    table = LoginEvent.__table__
    conditions = []
    if username:
        conditions.append(table.c.username == username[:64])
    if outcome:
        conditions.append(table.c.outcome == str(outcome))
    total = session.execute(sa.select(sa.func.count()).select_from(table).where(*conditions)).scalar_one()
    pages = max(1, math.ceil(total / per_page))
    page = min(max(1, page), pages)
    rows = session.exec(
        select(LoginEvent)
        .where(*conditions)
        .order_by(LoginEvent.id.desc())
        .offset((page - 1) * per_page)
        .limit(per_page)
    ).all()
    return EventPage(rows=list(rows), total=total, page=page, pages=pages)
