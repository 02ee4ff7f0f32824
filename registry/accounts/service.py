"""Use cases for accounts: create users, check passwords, web login sessions and API tokens."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlmodel import Session, select

from registry.accounts.models import ApiToken, LoginOutcome, LoginSession, Role, User
from registry.authz import Actor
from registry.db import utcnow
from registry.errors import Conflict, NotFound, Unprocessable

_hasher = PasswordHasher()  # argon2id with the library's current parameters
TOKEN_PREFIX = "rgt_"  # noqa: S105 - a public prefix, not a secret
MIN_PASSWORD_LENGTH = 10


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def actor_for(user: User, *, via_token: bool = False) -> Actor:
    return Actor(
        user_id=user.id, username=user.username, role=str(user.role), city_code=user.city_code, via_token=via_token
    )


def create_user(
    *,
    session: Session,
    username: str,
    password: str,
    role: str,
    display_name: str | None = None,
    city_code: str | None = None,
    email: str | None = None,
) -> User:
    """Create an account. Raises Unprocessable (bad role, city rules, short password) or Conflict (name taken)."""
    try:
        role = Role(role)
    except ValueError:
        raise Unprocessable(
            f"Unknown role {role!r}; use city, reviewer or admin.", code="bad_role", pointer="/role"
        ) from None
    if role == Role.CITY and not city_code:
        raise Unprocessable("A city team account needs a city code.", code="city_required", pointer="/city_code")
    if role != Role.CITY and city_code:
        raise Unprocessable(
            "Only city team accounts are bound to a city.", code="city_not_allowed", pointer="/city_code"
        )
    if len(password) < MIN_PASSWORD_LENGTH:
        raise Unprocessable(
            f"The password must have at least {MIN_PASSWORD_LENGTH} characters.",
            code="weak_password",
            pointer="/password",
        )
    if session.exec(select(User).where(User.username == username)).first() is not None:
        raise Conflict(f"The user name {username!r} is taken.", code="username_taken", pointer="/username")
    user = User(
        username=username,
        display_name=display_name or username,
        role=role,
        city_code=city_code,
        email=email,
        password_hash=_hasher.hash(password),
    )
    session.add(user)
    session.flush()
    return user


def authenticate(*, session: Session, username: str, password: str) -> User | None:
    """The active user with this name and password, or None. Spends the same time whether or not the name exists."""
    outcome, user = check_password(session=session, username=username, password=password)
    return user if outcome == LoginOutcome.SUCCESS else None


def check_password(*, session: Session, username: str, password: str) -> tuple[LoginOutcome, User | None]:
    """Check a login: SUCCESS, WRONG_PASSWORD, INACTIVE (the right password of a deactivated account) or
    UNKNOWN_USER, with the account of that name (None when there is none; only a SUCCESS may log it in).

    Spends the same time whether or not the name exists: an unknown name costs one argon2 hash, as a check does.
    """
    user = session.exec(select(User).where(User.username == username)).first()
    if user is None:
        _hasher.hash(password)  # keep the timing of unknown names like that of known ones
        return LoginOutcome.UNKNOWN_USER, None
    try:
        _hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        return LoginOutcome.WRONG_PASSWORD, user
    if not user.active:
        return LoginOutcome.INACTIVE, user
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
        session.add(user)
    return LoginOutcome.SUCCESS, user


def start_login_session(*, session: Session, user: User, hours: int) -> str:
    """Open a web login for ``user``; returns the token the browser keeps (the database keeps its hash)."""
    token = secrets.token_urlsafe(32)
    session.add(LoginSession(id=_sha256(token), user_id=user.id, expires_at=utcnow() + timedelta(hours=hours)))
    session.flush()
    return token


def user_for_login_session(*, session: Session, token: str) -> User | None:
    """The active user of a live login session, or None (unknown, ended or expired)."""
    record = session.get(LoginSession, _sha256(token))
    if record is None or record.ended_at is not None or record.expires_at <= utcnow():
        return None
    user = session.get(User, record.user_id)
    return user if user is not None and user.active else None


def end_login_session(*, session: Session, token: str) -> None:
    record = session.get(LoginSession, _sha256(token))
    if record is not None and record.ended_at is None:
        record.ended_at = utcnow()
        session.add(record)


def create_token(*, session: Session, user: User, label: str = "") -> tuple[str, ApiToken]:
    """Make an API token for ``user``. Returns the token (shown once, never stored) and its record."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    record = ApiToken(user_id=user.id, token_hash=_sha256(token), prefix=token[: len(TOKEN_PREFIX) + 6], label=label)
    session.add(record)
    session.flush()
    return token, record


def user_for_token(*, session: Session, token: str) -> User | None:
    """The active owner of a live API token, or None; records when the token was last used, to the minute (a
    write on every call would queue every API request of a SQLite registry behind the database's one writer)."""
    record = session.exec(select(ApiToken).where(ApiToken.token_hash == _sha256(token))).first()
    if record is None or record.revoked_at is not None:
        return None
    user = session.get(User, record.user_id)
    if user is None or not user.active:
        return None
    now = utcnow()
    if record.last_used_at is None or now - record.last_used_at >= LAST_USED_RESOLUTION:
        record.last_used_at = now
        session.add(record)
    return user


LAST_USED_RESOLUTION = timedelta(minutes=1)


def list_tokens(*, session: Session, user_id: int) -> list[ApiToken]:
    return list(session.exec(select(ApiToken).where(ApiToken.user_id == user_id).order_by(ApiToken.id)))


def revoke_token(*, session: Session, user_id: int, token_id: int) -> ApiToken:
    """Revoke one of ``user_id``'s tokens. Raises NotFound for a token that is not theirs."""
    record = session.get(ApiToken, token_id)
    if record is None or record.user_id != user_id:
        raise NotFound("No such token.", code="token_not_found")
    if record.revoked_at is None:
        record.revoked_at = utcnow()
        session.add(record)
    return record


def display_names(*, session: Session, ids) -> dict[int, str]:
    """The names to show for these account ids (for trails and threads), in one query."""
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    rows = session.exec(select(User.id, User.display_name, User.username).where(User.id.in_(wanted)))
    return {uid: display or username for uid, display, username in rows}


def get_user_by_name(*, session: Session, username: str) -> User:
    user = session.exec(select(User).where(User.username == username)).first()
    if user is None:
        raise NotFound(f"No user named {username!r}.", code="user_not_found")
    return user
