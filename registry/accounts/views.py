"""Login, logout, and the account page where a person manages their API tokens."""

from __future__ import annotations

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_user, logout_user
from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, Length

from registry.access import LoginUser, allow, current_actor
from registry.accounts import service as accounts
from registry.authz import PUBLIC
from registry.request_db import db

bp = Blueprint("accounts", __name__)


class LoginForm(FlaskForm):
    username = StringField("username", validators=[DataRequired(), Length(max=64)])
    password = PasswordField("password", validators=[DataRequired(), Length(max=1000)])


class TokenForm(FlaskForm):
    label = StringField("label", validators=[Length(max=200)])


def _safe_next(target: str | None) -> str:
    if target and target.startswith("/") and not target.startswith("//"):
        return target
    return url_for("home.index")


@bp.route("/login", methods=["GET", "POST"])
@allow(PUBLIC)
def login():
    form = LoginForm()
    failed = False
    if form.validate_on_submit():
        user = accounts.authenticate(session=db(), username=form.username.data, password=form.password.data)
        if user is None:
            failed = True
        else:
            token = accounts.start_login_session(session=db(), user=user, hours=current_app.config["SESSION_HOURS"])
            db().commit()
            login_user(LoginUser(user, token))
            return redirect(_safe_next(request.args.get("next")))
    status = 401 if failed else 200
    return render_template("accounts/login.html", form=form, failed=failed), status


@bp.post("/logout")
@allow("city", "reviewer", "admin")
def logout():
    accounts.end_login_session(session=db(), token=current_user.token)
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
