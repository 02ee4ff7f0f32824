"""Accounts: people who log in, their login sessions and their API tokens."""

from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from registry.db import UTCDateTime, utcnow


class Role(StrEnum):
    CITY = "city"  # 市级: a city team, bound to one city
    REVIEWER = "reviewer"  # 省级: a provincial reviewer
    ADMIN = "admin"  # an administrator


class UserBase(SQLModel):
    username: str = Field(max_length=64, unique=True, index=True)
    display_name: str = Field(max_length=200)
    role: Role = Field(sa_type=sa.String(16))
    city_code: str | None = Field(default=None, foreign_key="city.code", max_length=6)


class User(UserBase, table=True):
    id: int | None = Field(default=None, primary_key=True)
    email: str | None = Field(default=None, max_length=254)
    password_hash: str = Field(max_length=255)
    active: bool = True
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class UserPublic(UserBase):
    """What other accounts see of an account (never the hash or the e-mail)."""

    id: int


class LoginSession(SQLModel, table=True):
    """A server-side web login: the browser holds a random token, the database its sha256."""

    __tablename__ = "login_session"

    id: str = Field(primary_key=True, max_length=64)  # sha256 hex of the token
    user_id: int = Field(foreign_key="user.id", index=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime)
    ended_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class ApiToken(SQLModel, table=True):
    """A bearer token for a city team's pipelines: shown once, stored hashed, revocable."""

    __tablename__ = "api_token"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user.id", index=True)
    token_hash: str = Field(max_length=64, unique=True)
    prefix: str = Field(max_length=16)  # first characters, so a person can tell tokens apart
    label: str = Field(default="", max_length=200)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    last_used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class ApiTokenPublic(SQLModel):
    id: int
    prefix: str
    label: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class LoginOutcome(StrEnum):
    """What became of one login attempt (or of a logout, or an administrator's unlock), as the trail records it."""

    SUCCESS = "success"
    WRONG_PASSWORD = "wrong_password"  # noqa: S105 - an outcome's name, not a password
    UNKNOWN_USER = "unknown_user"
    INACTIVE = "inactive"  # the right password for a deactivated account
    LOCKED = "locked"  # refused unchecked: too many failures for this user name
    RATE_LIMITED = "rate_limited"  # refused unchecked: too many attempts from this address
    LOGOUT = "logout"
    UNLOCKED = "unlocked"  # an administrator lifted a lock (`registry users unlock`)
    BAD_TOKEN = "bad_token"  # noqa: S105 - an outcome's name: an API token nobody has (unknown or revoked)


class LoginEvent(SQLModel, table=True):
    """One entry of the login trail: append-only (the database refuses UPDATE and DELETE)."""

    __tablename__ = "login_event"

    id: int | None = Field(default=None, primary_key=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)
    outcome: LoginOutcome = Field(sa_type=sa.String(32), index=True)
    username: str = Field(max_length=64, index=True)  # the name tried, cut to 64 characters
    user_id: int | None = Field(default=None, foreign_key="user.id", index=True)  # when the name is an account's
    client_address: str | None = Field(default=None, max_length=64)
    user_agent: str | None = Field(default=None, max_length=256)  # cut to 256 characters


class LoginThrottle(SQLModel, table=True):
    """Consecutive failed logins per user name tried, and the lock they led to.

    Kept per name, not per account, so that a name nobody has is locked exactly like a real one: the answer to a
    guess never tells whether the account exists.
    """

    __tablename__ = "login_throttle"

    username: str = Field(primary_key=True, max_length=64)
    failures: int = 0  # attempts counted since the last success, unlock or expired lock (an attempt counts first)
    locked_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # The last attempt, success or unlock: a name not locked is forgotten a day after it (migration 0012's index).
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)
