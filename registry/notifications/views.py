"""The inbox page (every staff account's own notifications), its mark-read forms, and the unread count that the
header navigation shows on every page. Views parse, call the service and render."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from sqlalchemy.exc import SQLAlchemyError

from registry.access import allow, current_actor
from registry.api_support import int_arg
from registry.i18n import is_chinese
from registry.notifications import service as notifications
from registry.notifications import texts
from registry.request_db import db

bp = Blueprint("notifications", __name__)
STAFF = ("city", "reviewer", "admin")
PAGE_SIZE = 50


def inbox_unread() -> int | None:
    """The reader's unread count for the header (None for the public, or when the database cannot answer)."""
    actor = current_actor()
    if not actor.is_authenticated:
        return None
    try:
        return notifications.unread_count(session=db(), actor=actor)
    except SQLAlchemyError:  # an error page after a failed transaction: the header goes without the count
        return None


@bp.record_once
def _register(state) -> None:
    state.app.jinja_env.globals["inbox_unread"] = inbox_unread


def _local(link: str) -> str:
    """Only a path inside the registry is linked."""
    return link if link.startswith("/") and not link.startswith("//") else url_for("notifications.inbox")


@bp.get("/inbox")
@allow(*STAFF)
def inbox():
    """The reader's notifications, newest first, unread ones marked, each linking to its filing, audit or decision."""
    page = notifications.inbox(session=db(), actor=current_actor(), page=int_arg("page", 1), per_page=PAGE_SIZE)
    language = texts.ZH if is_chinese() else texts.EN
    items = [
        {
            "id": n.id,
            "unread": n.read_at is None,
            "title": texts.title(n.kind, language),
            "text": texts.render(n.kind, n.params, language),
            "link": _local(n.link),
            "created_at": n.created_at,
        }
        for n in page.items
    ]
    pages = max(1, -(-page.total // page.per_page))
    return render_template("notifications/inbox.html", page=page, items=items, pages=pages)


def _back() -> str:
    page = request.form.get("page", "")
    return (
        url_for("notifications.inbox", page=int(page))
        if page.isdigit() and int(page) > 1
        else url_for("notifications.inbox")
    )


@bp.post("/inbox/<int:notification_id>/read")
@allow(*STAFF)
def mark_read(notification_id: int):
    notifications.mark_read(session=db(), actor=current_actor(), notification_id=notification_id)
    db().commit()
    flash(_("The notification is marked as read."))
    return redirect(_back(), 303)


@bp.post("/inbox/read-all")
@allow(*STAFF)
def mark_all_read():
    notifications.mark_all_read(session=db(), actor=current_actor())
    db().commit()
    flash(_("All your notifications are marked as read."))
    return redirect(_back(), 303)
