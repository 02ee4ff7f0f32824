"""Raise a concern: the public form on each library entry, its confirmation, the reviewers' seen/answered buttons,
and the rate limit on the form (Flask-Limiter, per client address) with its 429 answer.

Views parse the request, call registry.library.concerns and render. The form works without an account and
without JavaScript; it has a CSRF token and a honeypot field that people never see (a bot that fills it in is
thanked and nothing is stored).
"""

from __future__ import annotations

import math
import time

from flask import Blueprint, current_app, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_limiter import Limiter
from flask_limiter.errors import RateLimitExceeded

from registry import problems
from registry.access import allow, client_address, current_actor
from registry.authz import PUBLIC
from registry.cities import service as cities
from registry.errors import ValidationFailed
from registry.i18n import is_chinese
from registry.library import concerns, public
from registry.request_db import db

bp = Blueprint("library_concerns", __name__)
FORM_ENDPOINT = "library_concerns.concern"
HONEYPOT = "website"  # a field hidden from people; bots fill in anything that looks like a web address
SENT = "concern_sent"  # session key: the filing number and reference of the concern just sent


# --- the rate limit ----------------------------------------------------------------------------------------------


def init_rate_limits(app) -> Limiter:
    """A limiter of the app's own (its counts in RATELIMIT_STORAGE_URL, memory by default) limiting the POSTs of
    the concern form per client address (CONCERN_RATE_LIMIT), and the app's answer to a breached limit."""
    limiter = Limiter(
        client_address,
        storage_uri=app.config.get("RATELIMIT_STORAGE_URL") or "memory://",
        strategy="fixed-window",
        key_prefix="registry",
        enabled=bool(app.config.get("RATELIMIT_ENABLED", True)),
        # A shared storage that is down: count in memory meanwhile, and never fail the request because of it.
        in_memory_fallback_enabled=True,
        swallow_errors=True,
    )
    limiter.init_app(app)
    limiter.limit(
        lambda: current_app.config["CONCERN_RATE_LIMIT"],
        methods=["POST"],
        exempt_when=lambda: request.endpoint != FORM_ENDPOINT,
    )(bp)
    app.register_error_handler(RateLimitExceeded, _rate_limited)
    app.extensions["registry_limiter"] = limiter
    return limiter


def _retry_after() -> int:
    """Seconds until the breached limit's window ends (a minute when the limiter cannot say)."""
    limiter: Limiter | None = current_app.extensions.get("registry_limiter")
    limit = limiter.current_limit if limiter is not None else None
    if limit is None:
        return 60
    return max(1, math.ceil(limit.window.reset_time - time.time()))


def _rate_limited(error: RateLimitExceeded):
    """429: problem+json on the API; on pages a friendly page in the reader's language, with Retry-After."""
    seconds = _retry_after()
    if problems.wants_problem():
        response = problems.problem(
            429,
            "Too many requests",
            f"Too many requests from your address ({error.description}). Try again in {seconds} seconds.",
            code="rate_limited",
            retry_after=seconds,
        )
    else:
        minutes = max(1, math.ceil(seconds / 60))
        if request.endpoint == FORM_ENDPOINT:
            body = render_template(
                "library/concern.html",
                mode="limited",
                entry=None,
                filing_number=(request.view_args or {}).get("filing_number", ""),
                minutes=minutes,
            )
        else:
            body = render_template(
                "error.html",
                status=429,
                message="",
                explanation=_(
                    "Too many requests from your connection. Please try again in %(minutes)s minutes.", minutes=minutes
                ),
            )
        response = current_app.response_class(body, status=429, mimetype="text/html")
    response.headers["Retry-After"] = str(seconds)
    return response


# --- the public form ---------------------------------------------------------------------------------------------


def _entry(filing_number: str) -> dict:
    """What the form page shows of the entry: the public summary and how to appeal (registry.library.public)."""
    filing = concerns.public_filing(session=db(), filing_number=filing_number)
    body = public.summary(filing, cities.get_city(session=db(), code=filing.city_code))
    oversight = public.document_summary(filing.technical_document)["human_oversight"]
    body["appeal_process"] = oversight.get("appeal_process")
    return body


def _form(filing_number: str, *, entry: dict, errors: dict | None = None, values=None, status: int = 200):
    errors = errors or {}
    return (
        render_template(
            "library/concern.html",
            mode="form",
            entry=entry,
            filing_number=filing_number,
            concern_errors=errors,
            concern_values=values or {},
            concern_standalone=True,
        ),
        status,
    )


@bp.route("/library/<filing_number>/concern", methods=["GET", "POST"])
@allow(PUBLIC)
def concern(filing_number: str):
    """GET: the form. POST: store the concern and go to its confirmation, or show the form again with errors."""
    entry = _entry(filing_number)
    if request.method == "GET":
        return _form(filing_number, entry=entry)
    form = request.form
    if form.get(HONEYPOT):
        session[SENT] = {"filing_number": filing_number, "reference": None}
        return redirect(url_for(".sent", filing_number=filing_number), 303)
    try:
        stored = concerns.raise_concern(
            session=db(),
            filing_number=filing_number,
            body=form.get("body"),
            contact=form.get("contact"),
            affected=bool(form.get("affected")),
            language="zh" if is_chinese() else "en",
        )
    except ValidationFailed as exc:
        db().rollback()
        errors = {e.pointer.lstrip("/"): e.message_zh if is_chinese() else e.message for e in exc.errors}
        return _form(filing_number, entry=entry, errors=errors, values=form, status=422)
    reference = stored.reference
    db().commit()
    session[SENT] = {"filing_number": filing_number, "reference": reference}
    return redirect(url_for(".sent", filing_number=filing_number), 303)


@bp.get("/library/<filing_number>/concern/sent")
@allow(PUBLIC)
def sent(filing_number: str):
    """The confirmation with the reference number (kept in the sender's session, so a reload shows it again)."""
    entry = _entry(filing_number)
    done = session.get(SENT) or {}
    if done.get("filing_number") != filing_number:
        return redirect(url_for(".concern", filing_number=filing_number))
    return render_template(
        "library/concern.html", mode="sent", entry=entry, filing_number=filing_number, reference=done.get("reference")
    )


# --- the reviewers' buttons on the filing page -------------------------------------------------------------------


@bp.post("/filings/<int:filing_id>/concerns/<int:concern_id>/status")
@allow("reviewer")
def set_status(filing_id: int, concern_id: int):
    status = request.form.get("status", "")
    stored = concerns.set_status(
        session=db(), actor=current_actor(), filing_id=filing_id, concern_id=concern_id, status=status
    )
    reference = stored.reference
    db().commit()
    flash(_("The concern %(reference)s is marked: %(status)s.", reference=reference, status=_status_label(status)))
    return redirect(url_for("filings.detail", filing_id=filing_id, _anchor=f"concern-{concern_id}"), 303)


def _status_label(status: str) -> str:
    return {"new": _("New"), "seen": _("Seen"), "answered": _("Answered")}.get(status, status)


@bp.record_once
def _register(state) -> None:
    state.app.jinja_env.globals.update(
        concern_status_label=_status_label,
        concern_body_limits=(concerns.MIN_BODY, concerns.MAX_BODY),
    )
