"""A web login attempt, guarded against password guessing: lockout per user name, and every attempt in the trail.

Two use cases, each committed by the caller: ``admit`` counts the attempt (or finds the name locked) and
``settle`` checks the password, clears the count on success and records the outcome. Committing in between is
what makes the count hold under concurrent guesses (see registry.accounts.lockout).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session

from registry.accounts import lockout, trail
from registry.accounts import service as accounts
from registry.accounts.models import LoginOutcome, User


@dataclass(frozen=True)
class Attempt:
    outcome: LoginOutcome
    user: User | None  # the account logged in: set only on SUCCESS
    locked_until: datetime | None  # the name is locked until then (by this attempt, or already before it)

    @property
    def succeeded(self) -> bool:
        return self.outcome == LoginOutcome.SUCCESS


def admit(*, session: Session, username: str, policy: lockout.Policy) -> lockout.Claim:
    """Count the attempt before its password is checked, or refuse it if the name is locked (caller commits)."""
    return lockout.claim_attempt(session=session, username=username, policy=policy)


def settle(*, session: Session, claim: lockout.Claim, username: str, password: str, client: trail.Client) -> Attempt:
    """Check the password of an admitted attempt (a refused one is not checked at all), reset the count on success,
    and record the outcome in the trail (caller commits).

    Known and unknown names take the same path and the same time, and both lock after the same failures.
    """
    if not claim.admitted:
        trail.record(
            session=session,
            outcome=LoginOutcome.LOCKED,
            username=username,
            user_id=trail.user_id_for(session=session, username=username),
            client=client,
        )
        return Attempt(LoginOutcome.LOCKED, None, claim.locked_until)
    outcome, user = accounts.check_password(session=session, username=username, password=password)
    locked_until = claim.locked_until
    if outcome == LoginOutcome.SUCCESS:
        lockout.clear(session=session, username=username)
        locked_until = None
    trail.record(session=session, outcome=outcome, username=username, user_id=user.id if user else None, client=client)
    return Attempt(outcome, user if outcome == LoginOutcome.SUCCESS else None, locked_until)


def unlock(*, session: Session, username: str, client: trail.Client) -> bool:
    """An administrator lifts the lock on an account and clears its failures; recorded as "unlocked" (caller
    commits). Raises NotFound for a name no account has. Returns whether the account was locked."""
    user = accounts.get_user_by_name(session=session, username=username)
    was_locked = lockout.clear(session=session, username=username)
    trail.record(session=session, outcome=LoginOutcome.UNLOCKED, username=username, user_id=user.id, client=client)
    return was_locked
