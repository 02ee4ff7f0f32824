"""The home page, the language switch and the large-text, high-contrast display switch."""

from __future__ import annotations

from flask import Blueprint, redirect, request, url_for

from registry.access import allow, current_actor
from registry.authz import PUBLIC
from registry.i18n import LANGUAGE_COOKIE
from registry.library import page_cache
from registry.library.views import render_library
from registry.web import local_target

bp = Blueprint("home", __name__)


@bp.get("/")
@allow(PUBLIC)
def index():
    """Staff go to their filings; anyone else starts in the public library (the same query parameters work)."""
    if current_actor().is_authenticated:
        return redirect(url_for("filings.dashboard"))
    return page_cache.serve(lambda csrf_token: render_library("home.html", csrf_token=csrf_token))


@bp.post("/language")
@allow(PUBLIC)
def set_language():
    """Remember the chosen language in a cookie and go back to the page the reader was on (no JavaScript needed)."""
    lang = request.form.get("lang", "zh_CN")
    target = local_target(request.form.get("next")) or url_for("home.index")
    response = redirect(target)
    if lang in ("zh_CN", "en"):
        response.set_cookie(LANGUAGE_COOKIE, lang, max_age=365 * 24 * 3600, samesite="Lax", httponly=True)
    return response


# --- large text and high contrast (a cookie, like the language) ----------------------------------------------------

DISPLAY_COOKIE = "display"
DISPLAY_LARGE, DISPLAY_STANDARD = "large", "standard"


def display_large() -> bool:
    """Whether the reader chose large text and high contrast (the class ``display-large`` on every page)."""
    return request.cookies.get(DISPLAY_COOKIE) == DISPLAY_LARGE


@bp.record_once
def _register_display(state) -> None:
    state.app.jinja_env.globals["display_large"] = display_large


@bp.post("/display")
@allow(PUBLIC)
def set_display():
    """Remember large text and high contrast (or the standard display) in a cookie and go back to the page the
    reader was on (no JavaScript needed)."""
    mode = request.form.get("display")
    target = local_target(request.form.get("next")) or url_for("home.index")
    response = redirect(target, 303)
    if mode == DISPLAY_LARGE:
        response.set_cookie(DISPLAY_COOKIE, DISPLAY_LARGE, max_age=365 * 24 * 3600, samesite="Lax", httponly=True)
    elif mode == DISPLAY_STANDARD:
        response.delete_cookie(DISPLAY_COOKIE, samesite="Lax", httponly=True)
    return response
