"""REST API for the caller's own account and API tokens."""

from __future__ import annotations

from flask import Blueprint

from registry.access import allow, current_actor
from registry.accounts import service as accounts
from registry.api_support import json_response
from registry.request_db import db

bp = Blueprint("accounts_api", __name__, url_prefix="/api/v1")


def token_json(t) -> dict:
    return {
        "id": t.id,
        "prefix": t.prefix,
        "label": t.label,
        "created_at": t.created_at.isoformat(),
        "last_used_at": t.last_used_at.isoformat() if t.last_used_at else None,
        "revoked_at": t.revoked_at.isoformat() if t.revoked_at else None,
    }


@bp.get("/me")
@allow("city", "reviewer", "admin")
def me():
    actor = current_actor()
    return json_response({"username": actor.username, "role": actor.role, "city_code": actor.city_code})


@bp.get("/tokens")
@allow("city", "reviewer", "admin")
def list_tokens():
    return json_response(
        {"items": [token_json(t) for t in accounts.list_tokens(session=db(), user_id=current_actor().user_id)]}
    )


@bp.delete("/tokens/<int:token_id>")
@allow("city", "reviewer", "admin")
def revoke_token(token_id: int):
    """Revoke one of the caller's own tokens (the one in use included)."""
    record = accounts.revoke_token(session=db(), user_id=current_actor().user_id, token_id=token_id)
    db().commit()
    return json_response(token_json(record))
