"""Pages for people: shared pieces (CSRF, error pages, layout helpers)."""

from __future__ import annotations

from flask import current_app, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFProtect

csrf = CSRFProtect()


def _explanation(status: int) -> str:
    """What a status means for the reader, in their language (the detail from the code is in English)."""
    if status == 400:
        return _(
            "The request could not be used. If you sent a form, it may have expired: go back, reload the page and try again."
        )
    if status == 403:
        return _("Your account may not do this.")
    if status == 404:
        return _("There is no such page or filing, or it is not yours to see.")
    if status == 405:
        return _("This address does not accept that kind of request.")
    if status == 409:
        return _("This is not possible in the filing's current state.")
    if status == 413:
        limit = int(current_app.config["MAX_MODEL_BYTES"]) / (1024 * 1024)
        return _(
            "The upload is larger than this registry accepts (a model may have at most %(mb)s MB).", mb=round(limit, 1)
        )
    if status == 415:
        return _("This kind of file is not accepted here.")
    if status == 422:
        return _("What was sent is incomplete or not valid.")
    if status >= 500:
        return _("Something went wrong on our side; nothing was saved.")
    return _("The request could not be completed.")


def local_target(target: str | None) -> str | None:
    """``target`` when it is a path on this site (where a form may send the browser back to), else None.

    Browsers drop tabs and line breaks from a URL and read a backslash as a slash, so "/<tab>/evil.example" and
    "/<backslash>evil.example" would lead off the site like "//evil.example": any of those is refused.
    """
    if not target or not target.startswith("/") or target.startswith("//"):
        return None
    if any(ch == "\\" or ch.isspace() or not ch.isprintable() for ch in target):
        return None
    return target


def render_error(status: int, message: str):
    """An error page in the reader's language; a page that needs a login sends the browser to log in."""
    if status == 401:
        return redirect(url_for("accounts.login", next=request.full_path.rstrip("?")))
    return render_template("error.html", status=status, message=message, explanation=_explanation(status)), status
