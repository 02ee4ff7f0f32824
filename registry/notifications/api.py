"""REST API for the caller's own notifications under /api/v1: list, mark one read, mark all read."""

from __future__ import annotations

from flask import Blueprint, current_app, request

from registry.access import allow, current_actor
from registry.api_support import int_arg, json_response
from registry.errors import Unprocessable
from registry.notifications import service as notifications
from registry.notifications import texts
from registry.notifications.models import Notification
from registry.request_db import db

bp = Blueprint("notifications_api", __name__, url_prefix="/api/v1")
STAFF = ("city", "reviewer", "admin")
TRUE, FALSE = {"true", "1", "yes"}, {"false", "0", "no"}


def _time(value):
    return value.isoformat() if value is not None else None


def notification_json(row: Notification) -> dict:
    """A notification with its text in English (``text``) and Chinese (``text_zh``), rendered now."""
    return {
        "id": row.id,
        "kind": row.kind,
        "filing_id": row.filing_id,
        "link": row.link,
        "title": texts.title(row.kind, texts.EN),
        "title_zh": texts.title(row.kind, texts.ZH),
        "text": texts.render(row.kind, row.params, texts.EN),
        "text_zh": texts.render(row.kind, row.params, texts.ZH),
        "params": dict(row.params or {}),
        "created_at": _time(row.created_at),
        "read_at": _time(row.read_at),
        "read": row.read_at is not None,
    }


def _unread_arg() -> bool:
    raw = request.args.get("unread")
    if raw is None or raw.lower() in FALSE:
        return False
    if raw.lower() in TRUE:
        return True
    raise Unprocessable("unread is true or false.", code="bad_query", pointer="/query/unread")


@bp.get("/notifications")
@allow(*STAFF)
def list_notifications():
    """The caller's notifications, newest first (``unread=true``: only the unread ones), one page at a time."""
    page = notifications.inbox(
        session=db(),
        actor=current_actor(),
        unread_only=_unread_arg(),
        page=int_arg("page", 1),
        per_page=int_arg("per_page", current_app.config["API_PAGE_SIZE"]),
    )
    return json_response(
        {
            "items": [notification_json(n) for n in page.items],
            "total": page.total,
            "unread": page.unread,
            "page": page.page,
            "per_page": page.per_page,
        }
    )


@bp.post("/notifications/<int:notification_id>/read")
@allow(*STAFF)
def mark_read(notification_id: int):
    """Mark one of the caller's notifications read (another account's is 404)."""
    row = notifications.mark_read(session=db(), actor=current_actor(), notification_id=notification_id)
    db().commit()
    return json_response(notification_json(row))


@bp.post("/notifications/read-all")
@allow(*STAFF)
def mark_all_read():
    """Mark every unread notification of the caller read."""
    count = notifications.mark_all_read(session=db(), actor=current_actor())
    db().commit()
    return json_response({"marked": count, "unread": 0})
