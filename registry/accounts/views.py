"""Login (rate limited per address, locked per user name, every attempt in the trail), logout, the account page
where a person manages their API tokens, and the administrators' page of the login trail."""

from __future__ import annotations

import math
import time
from urllib.parse import urlencode

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_limiter.errors import RateLimitExceeded
from flask_login import current_user, login_user, logout_user
from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, Length

from registry.access import LoginUser, allow, client_address, current_actor
from registry.accounts import lockout, trail
from registry.accounts import login as login_attempts
from registry.accounts import service as accounts
from registry.accounts.models import LoginOutcome
from registry.authz import PUBLIC
from registry.errors import DomainError
from registry.request_db import db
from registry.web import local_target, render_error

bp = Blueprint("accounts", __name__)
LOGIN_ENDPOINT = "accounts.login"


class LoginForm(FlaskForm):
    username = StringField("username", validators=[DataRequired(), Length(max=64)])
    password = PasswordField("password", validators=[DataRequired(), Length(max=1000)])


class TokenForm(FlaskForm):
    label = StringField("label", validators=[Length(max=200)])


def _safe_next(target: str | None) -> str:
    return local_target(target) or url_for("home.index")


def _client() -> trail.Client:
    return trail.Client(address=client_address(), user_agent=request.headers.get("User-Agent"))


def _minutes_until(moment) -> int:
    return max(1, math.ceil((moment - lockout.utcnow()).total_seconds() / 60))


def _login_page(form: LoginForm, *, status: int = 200, problem: str | None = None, minutes: int | None = None):
    """The login page; ``problem`` is "failed" (wrong name or password), "locked" or "limited"."""
    return render_template("accounts/login.html", form=form, problem=problem, minutes=minutes), status


@bp.route("/login", methods=["GET", "POST"])
@allow(PUBLIC)
def login():
    form = LoginForm()
    if not form.validate_on_submit():
        return _login_page(form)
    username, password = form.username.data, form.password.data
    db().commit()  # end any read (the session's user) so the count below is this transaction's first statement
    claim = login_attempts.admit(session=db(), username=username, policy=lockout.Policy.from_config(current_app.config))
    db().commit()  # the attempt counts before its password is checked (registry.accounts.lockout)
    attempt = login_attempts.settle(session=db(), claim=claim, username=username, password=password, client=_client())
    if not attempt.succeeded:
        db().commit()
        if attempt.locked_until is not None:
            return _login_page(form, status=401, problem="locked", minutes=_minutes_until(attempt.locked_until))
        return _login_page(form, status=401, problem="failed")
    token = accounts.start_login_session(session=db(), user=attempt.user, hours=current_app.config["SESSION_HOURS"])
    db().commit()
    login_user(LoginUser(attempt.user, token))
    return redirect(_safe_next(request.args.get("next")))


def _seconds_until_reset() -> int:
    """Seconds until the breached limit's window ends (a minute when the limiter cannot say)."""
    limiter = current_app.extensions.get("registry_limiter")
    limit = limiter.current_limit if limiter is not None else None
    if limit is None:
        return 60
    return max(1, math.ceil(limit.window.reset_time - time.time()))


@bp.errorhandler(RateLimitExceeded)
def _rate_limited(error: RateLimitExceeded):
    """429 on the login form: the login page says so, nothing is checked, and the attempt goes into the trail."""
    seconds = _seconds_until_reset()
    if request.endpoint == LOGIN_ENDPOINT:
        username = request.form.get("username", "")[: lockout.NAME_LENGTH]
        db().rollback()
        trail.record(
            session=db(),
            outcome=LoginOutcome.RATE_LIMITED,
            username=username,
            user_id=trail.user_id_for(session=db(), username=username),
            client=_client(),
        )
        db().commit()
        form = LoginForm(formdata=None, username=username)
        body, status = _login_page(form, status=429, problem="limited", minutes=max(1, math.ceil(seconds / 60)))
    else:
        body, status = render_error(429, str(error.description))
    response = current_app.make_response((body, status))
    response.headers["Retry-After"] = str(seconds)
    return response


@bp.record_once
def _limit_logins(state) -> None:
    """Count the POSTs of the login form per client address (LOGIN_RATE_LIMIT) with the app's limiter."""
    limiter = state.app.extensions["registry_limiter"]
    limiter.limit(
        lambda: current_app.config["LOGIN_RATE_LIMIT"],
        methods=["POST"],
        exempt_when=lambda: request.endpoint != LOGIN_ENDPOINT,
    )(bp)


@bp.post("/logout")
@allow("city", "reviewer", "admin")
def logout():
    actor = current_actor()
    accounts.end_login_session(session=db(), token=current_user.token)
    trail.record(
        session=db(), outcome=LoginOutcome.LOGOUT, username=actor.username, user_id=actor.user_id, client=_client()
    )
    db().commit()
    logout_user()
    return redirect(url_for("home.index"))


@bp.route("/account", methods=["GET", "POST"])
@allow("city", "reviewer", "admin")
def account():
    """The account page: the person's API tokens, a form to make one (shown once) and buttons to revoke."""
    form = TokenForm()
    new_token = None
    actor = current_actor()
    if form.validate_on_submit():
        user = accounts.get_user_by_name(session=db(), username=actor.username)
        new_token, _record = accounts.create_token(session=db(), user=user, label=form.label.data or "")
        db().commit()
    tokens = accounts.list_tokens(session=db(), user_id=actor.user_id)
    return render_template(
        "accounts/account.html", form=form, tokens=tokens, new_token=new_token, revoke_form=TokenForm()
    )


@bp.post("/account/tokens/<int:token_id>/revoke")
@allow("city", "reviewer", "admin")
def revoke_token(token_id: int):
    form = TokenForm()
    if form.validate_on_submit():
        accounts.revoke_token(session=db(), user_id=current_actor().user_id, token_id=token_id)
        db().commit()
        flash(_("The token is revoked."))
    return redirect(url_for("accounts.account"))


# --- the administrators' page of the login trail ----------------------------------------------------------------


def _outcome_labels() -> dict[str, str]:
    return {
        LoginOutcome.SUCCESS: _("Logged in"),
        LoginOutcome.WRONG_PASSWORD: _("Wrong password"),
        LoginOutcome.UNKNOWN_USER: _("Unknown user name"),
        LoginOutcome.INACTIVE: _("Deactivated account"),
        LoginOutcome.LOCKED: _("Refused: locked"),
        LoginOutcome.RATE_LIMITED: _("Refused: too many attempts from the address"),
        LoginOutcome.LOGOUT: _("Logged out"),
        LoginOutcome.UNLOCKED: _("Unlocked by an administrator"),
        LoginOutcome.BAD_TOKEN: _("Refused: unknown or revoked API token"),
    }


class UnlockForm(FlaskForm):
    username = StringField("username", validators=[DataRequired(), Length(max=lockout.NAME_LENGTH)])


@bp.post("/admin/security/unlock")
@allow("admin")
def unlock():
    """An administrator lifts a lock from the page (as ``registry users unlock`` does), recorded in the trail with
    the administrator's address and name."""
    form = UnlockForm()
    if not form.validate_on_submit():
        flash(_("Choose a user name to unlock."), "error")
        return redirect(url_for("accounts.security"), 303)
    username = form.username.data
    client = trail.Client(address=client_address(), user_agent=f"/admin/security by {current_actor().username}")
    try:
        was_locked = login_attempts.unlock(session=db(), username=username, client=client)
    except DomainError:  # a name no account has: its lock ends by itself, and tells nobody anything
        flash(_("No account is named %(name)s; its lock ends by itself.", name=username), "error")
        return redirect(url_for("accounts.security"), 303)
    db().commit()
    if was_locked:
        flash(_("Unlocked %(name)s.", name=username), "success")
    else:
        flash(_("%(name)s was not locked; its failed logins are cleared.", name=username), "success")
    return redirect(url_for("accounts.security"), 303)


@bp.get("/admin/security")
@allow("admin")
def security():
    """The login trail, newest first: filter by user name tried and by outcome, 50 a page; and the names locked now."""
    username = (request.args.get("user") or "").strip()[: lockout.NAME_LENGTH]
    outcome = trail.parse_outcome(request.args.get("outcome"))
    try:
        wanted = int(request.args.get("page", "1"))
    except ValueError:
        wanted = 1
    found = trail.events(session=db(), username=username or None, outcome=outcome, page=wanted)
    names = accounts.display_names(session=db(), ids=[e.user_id for e in found.rows])
    filters = {k: v for k, v in (("user", username), ("outcome", str(outcome) if outcome else "")) if v}

    def page_url(page: int) -> str:
        query = dict(filters, **({"page": page} if page > 1 else {}))
        return url_for("accounts.security") + ("?" + urlencode(query) if query else "")

    return render_template(
        "accounts/security.html",
        events=found,
        names=names,
        username=username,
        outcome=str(outcome) if outcome else "",
        outcome_labels=_outcome_labels(),
        locked=lockout.locked_names(session=db()),
        page_url=page_url,
    )
