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
