"""Account lockout: after a number of consecutive failed logins a user name is locked for a while.

The count is kept per user name tried (``login_throttle``), whether or not an account has that name, so a name
nobody has locks exactly as a real one does and the answer never tells which names exist.

An attempt is counted *before* its password is checked, by one conditional UPDATE that also refuses a locked
name: concurrent guesses queue on the row (PostgreSQL re-reads it after the lock is released, SQLite writes one at
a time), so no more than ``failures`` of them are ever checked, however many arrive at once. A success then
clears the count. The caller commits the claim before it checks the password, so the count stands even if the
check never finishes, and no lock is held while the password is hashed.

A name that is not locked is forgotten a day after its last attempt (:data:`FORGET_AFTER`): each attempt removes
up to :data:`FORGET_BATCH` such rows as it adds its own, so the table holds about the names tried in the last day,
however many names are guessed — not one row for every name ever tried.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session

from registry.accounts.models import LoginThrottle
from registry.db import UTCDateTime
from registry.db import utcnow as _utcnow

NAME_LENGTH = 64
FORGET_AFTER = timedelta(days=1)  # far longer than any lock: a count this old says nothing about a guesser now
FORGET_BATCH = 100


def utcnow() -> datetime:
    """The clock of the lockout (tests move it forward instead of sleeping)."""
    return _utcnow()


@dataclass(frozen=True)
class Policy:
    failures: int = 5  # consecutive failures that lock a name
    minutes: int = 15  # for how long

    @classmethod
    def from_config(cls, config) -> Policy:
        return cls(
            failures=max(1, int(config.get("LOGIN_LOCKOUT_FAILURES", 5))),
            minutes=max(1, int(config.get("LOGIN_LOCKOUT_MINUTES", 15))),
        )


@dataclass(frozen=True)
class Claim:
    """The answer to "may this attempt be checked?"."""

    admitted: bool  # False: the name is locked, and the password must not be checked
    locked_until: datetime | None  # the lock that stands now (set by this very attempt when it was the last allowed)


def key(username: str) -> str:
    return username[:NAME_LENGTH]


def claim_attempt(*, session: Session, username: str, policy: Policy) -> Claim:
    """Count one login attempt for ``username`` unless the name is locked; lock it if this is the last allowed.

    The caller commits before checking the password (see the module's docstring).
    """
    now = utcnow()
    table = LoginThrottle.__table__
    name = key(username)
    _forget_stale(session, now)
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    session.execute(
        insert(table).values(username=name, failures=0, locked_until=None, updated_at=now).on_conflict_do_nothing()
    )
    # An expired lock starts the count again; a live one makes the WHERE miss, so nothing is counted.
    counted = sa.case((table.c.locked_until.is_(None), table.c.failures + 1), else_=1)
    until = sa.bindparam("until", now + timedelta(minutes=policy.minutes), type_=UTCDateTime)
    row = session.execute(
        sa.update(table)
        .where(table.c.username == name, sa.or_(table.c.locked_until.is_(None), table.c.locked_until <= now))
        .values(
            failures=counted, locked_until=sa.case((counted >= policy.failures, until), else_=sa.null()), updated_at=now
        )
        .returning(table.c.locked_until)
    ).first()
    if row is not None:
        return Claim(admitted=True, locked_until=row.locked_until)
    locked_until = session.execute(sa.select(table.c.locked_until).where(table.c.username == name)).scalar_one()
    return Claim(admitted=False, locked_until=locked_until)


def _forget_stale(session: Session, now: datetime) -> None:
    """Remove up to FORGET_BATCH names whose last attempt is older than FORGET_AFTER and that are not locked now
    (found on the index of ``updated_at``)."""
    table = LoginThrottle.__table__
    stale = (
        sa.select(table.c.username)
        .where(
            table.c.updated_at < sa.bindparam("stale_before", now - FORGET_AFTER, type_=UTCDateTime),
            sa.or_(table.c.locked_until.is_(None), table.c.locked_until <= now),
        )
        .order_by(table.c.updated_at)
        .limit(FORGET_BATCH)
        .with_for_update(skip_locked=True)  # PostgreSQL: rows another attempt is removing are left to it
    )
    session.execute(sa.delete(table).where(table.c.username.in_(stale.scalar_subquery())))


def clear(*, session: Session, username: str) -> bool:
    """Forget the failures of ``username`` and lift its lock (after a success, or an administrator's unlock).

    Returns whether the name was locked.
    """
    now = utcnow()
    table = LoginThrottle.__table__
    was_locked = session.execute(
        sa.select(sa.func.count())
        .select_from(table)
        .where(table.c.username == key(username), table.c.locked_until > now)
    ).scalar_one()
    session.execute(
        sa.update(table).where(table.c.username == key(username)).values(failures=0, locked_until=None, updated_at=now)
    )
    return bool(was_locked)


def locked_names(*, session: Session, limit: int = 100) -> list[LoginThrottle]:
    """The names locked now, the latest lock first."""
    table = LoginThrottle.__table__
    now = utcnow()
    rows = session.execute(
        sa.select(table).where(table.c.locked_until > now).order_by(table.c.locked_until.desc()).limit(limit)
    )
    return [LoginThrottle(**row._mapping) for row in rows]
