"""One database session per request; handlers call the service and commit once."""

from __future__ import annotations

from flask import Flask, current_app, g
from sqlmodel import Session


def db() -> Session:
    """The request's database session (opened on first use, closed, and rolled back if uncommitted, at teardown)."""
    if "db_session" not in g:
        g.db_session = Session(current_app.extensions["registry"].engine, expire_on_commit=False)
    return g.db_session


def init_app(app: Flask) -> None:
    @app.teardown_appcontext
    def _close(_exc):
        session = g.pop("db_session", None)
        if session is not None:
            session.close()
