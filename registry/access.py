"""Who is asking, and may they call this endpoint: enforced for every request, before any view runs.

Each view declares the roles that may call it with ``@allow(...)``; a view that declares nothing cannot be
called at all (fail closed). Object-level rules (whose filing) are in ``registry.authz``, called by the services.
The API authenticates by bearer token only, the pages by the login session only: a page's cookie never
authorises an API call, so the API needs no CSRF token and the pages get flask-wtf's.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask, current_app, g, request
from flask_login import LoginManager, current_user

from registry.accounts import bad_tokens, trail
from registry.accounts import service as accounts
from registry.authz import ANONYMOUS, PUBLIC, Actor, may_call
from registry.errors import Forbidden, Unauthenticated
from registry.request_db import db

ACCESS_ATTRIBUTE = "registry_allowed_roles"
login_manager = LoginManager()


def allow(*roles: str) -> Callable:
    """Declare which roles may call a view: ``@allow("city", "reviewer")``, or ``@allow(PUBLIC)``."""
    unknown = set(roles) - {PUBLIC, "city", "reviewer", "admin"}
    if unknown or not roles:
        raise ValueError(f"unknown roles {unknown}")

    def mark(view: Callable) -> Callable:
        setattr(view, ACCESS_ATTRIBUTE, frozenset(roles))
        return view

    return mark


def allowed_roles(app: Flask, endpoint: str) -> frozenset[str] | None:
    if endpoint == "static":
        return frozenset({PUBLIC})
    view = app.view_functions.get(endpoint)
    return getattr(view, ACCESS_ATTRIBUTE, None)


def current_actor() -> Actor:
    return g.get("actor", ANONYMOUS)


class LoginUser:
    """What flask-login keeps: the login session's token (never the user id) as the session identity."""

    is_authenticated = True
    is_active = True
    is_anonymous = False

    def __init__(self, user, token: str) -> None:
        self.user = user
        self.token = token

    def get_id(self) -> str:
        return self.token


@login_manager.user_loader
def _load_login(token: str):
    user = accounts.user_for_login_session(session=db(), token=token)
    return LoginUser(user, token) if user is not None else None


def client_address() -> str:
    """The client's address: the connection's, or the one the trusted reverse proxies name (RATELIMIT_PROXY_HOPS)."""
    hops = int(current_app.config.get("RATELIMIT_PROXY_HOPS") or 0)
    forwarded = [a.strip() for a in request.headers.get("X-Forwarded-For", "").split(",") if a.strip()]
    if hops and len(forwarded) >= hops:
        return forwarded[-hops]
    return request.remote_addr or "unknown"


def _bearer_actor() -> Actor | None:
    header = request.headers.get("Authorization", "")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("Use 'Authorization: Bearer <token>'.", code="bad_authorization_header")
    user = accounts.user_for_token(session=db(), token=token.strip())
    if user is None:
        bad_tokens.refuse(trail.Client(address=client_address(), user_agent=request.headers.get("User-Agent")))
    db().commit()  # keep last_used_at
    return accounts.actor_for(user, via_token=True)


def _resolve_actor() -> Actor:
    if request.path.startswith("/api/"):
        return _bearer_actor() or ANONYMOUS
    if current_user.is_authenticated:
        return accounts.actor_for(current_user.user)
    return ANONYMOUS


def init_app(app: Flask) -> None:
    login_manager.init_app(app)
    login_manager.session_protection = "basic"

    @app.before_request
    def _authorise():
        if request.endpoint is None:  # no route matched: the router answers 404/405
            return None
        roles = allowed_roles(app, request.endpoint)
        g.actor = _resolve_actor()
        if roles is None:
            raise Forbidden("This address declares no access rule, so nobody may call it.", code="no_access_rule")
        if not may_call(g.actor, roles):
            if not g.actor.is_authenticated:
                raise Unauthenticated("Log in, or send an API token, to do this.", code="login_required")
            raise Forbidden("Your role may not do this.", code="role_not_allowed")
        return None
