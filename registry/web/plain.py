"""How plain values are written on pages: a free text (or "Not given"), yes or no, a day.

Plain functions made available to every template (:func:`register`), as registry.web.figures are, rather than a
macro in each template that needs them: a public entry page writes a few dozen of them, and a macro call costs
about ten times a function call.
"""

from __future__ import annotations

from datetime import date, datetime

from flask_babel import gettext as _
from markupsafe import Markup, escape

DASH = "—"


def text(value) -> Markup:
    """A free text as it was given, or a marked "Not given" when it is missing or empty."""
    if value is None or value == "" or value == []:
        return Markup('<span class="missing">{}</span>').format(_("Not given"))
    return escape(value)


def yesno(value) -> Markup:
    """True as a strong "Yes", False as "No", anything else (not answered) as a dash."""
    if value is True:
        return Markup("<strong>{}</strong>").format(_("Yes"))
    if value is False:
        return escape(_("No"))
    return escape(DASH)


def day(value: str | date | None) -> Markup:
    """A moment (an ISO 8601 string, a date or a datetime) as its day, in a <time> element; a dash if none."""
    if not value:
        return escape(DASH)
    iso = value.isoformat() if isinstance(value, date | datetime) else str(value)
    return Markup('<time datetime="{}">{}</time>').format(iso, iso[:10])


def register(app) -> None:
    app.jinja_env.globals.update(text=text, yesno=yesno, day=day)
