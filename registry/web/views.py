"""The home page and the language switch."""

from __future__ import annotations

from flask import Blueprint, redirect, render_template, request, url_for

from registry.access import allow, current_actor
from registry.authz import PUBLIC
from registry.i18n import LANGUAGE_COOKIE

bp = Blueprint("home", __name__)


@bp.get("/")
@allow(PUBLIC)
def index():
    if current_actor().is_authenticated:
        return redirect(url_for("filings.dashboard"))
    return render_template("home.html")


@bp.post("/language")
@allow(PUBLIC)
def set_language():
    """Remember the chosen language in a cookie and go back to the page the reader was on (no JavaScript needed)."""
    lang = request.form.get("lang", "zh_CN")
    target = request.form.get("next") or url_for("home.index")
    if not target.startswith("/") or target.startswith("//"):
        target = url_for("home.index")
    response = redirect(target)
    if lang in ("zh_CN", "en"):
        response.set_cookie(LANGUAGE_COOKIE, lang, max_age=365 * 24 * 3600, samesite="Lax", httponly=True)
    return response
