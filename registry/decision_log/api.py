"""The decision log's public API: no login, read-only, CORS open — everything a verifier needs, nothing else.

Checkpoints and keys are text (signed notes), entries and proofs JSON, a tlog-proof file per entry.
"""

from __future__ import annotations

from flask import Blueprint, Response, request

from registry.access import allow
from registry.api_support import int_arg, json_response
from registry.authz import PUBLIC
from registry.decision_log import keys as log_keys
from registry.decision_log import service as log
from registry.errors import Unprocessable
from registry.request_db import db

bp = Blueprint("decision_log_api", __name__, url_prefix="/api/v1/log")


def _public(response: Response, *, cache_seconds: int = 0) -> Response:
    response.headers["Access-Control-Allow-Origin"] = "*"
    if cache_seconds:
        response.cache_control.public = True
        response.cache_control.max_age = cache_seconds
    else:
        response.cache_control.no_cache = True
    return response


def _text(body: str, media_type: str = "text/plain; charset=utf-8", **kw) -> Response:
    return _public(Response(body, content_type=media_type), **kw)


def _required_int(name: str) -> int:
    if request.args.get(name) is None:
        raise Unprocessable(f"The query parameter {name} is required.", code="bad_query", pointer=f"/query/{name}")
    return int_arg(name, 0)


def _optional_int(name: str) -> int | None:
    return int_arg(name, 0) if request.args.get(name) is not None else None


@bp.get("/checkpoint")
@allow(PUBLIC)
def checkpoint():
    """The newest signed checkpoint (C2SP tlog-checkpoint as a C2SP signed note)."""
    return _text(log.latest_checkpoint(db(), log_keys.for_session(db())))


@bp.get("/public-key")
@allow(PUBLIC)
def public_key():
    """The verifier key in signed-note form: ``name+keyid+base64key``."""
    return _text(log_keys.for_session(db()).verifier_key + "\n", cache_seconds=3600)


@bp.get("/entries")
@allow(PUBLIC)
def entries():
    start = int_arg("start", 0)
    return _public(json_response(log.entries(db(), start, _optional_int("end"))))


@bp.get("/proof/inclusion")
@allow(PUBLIC)
def inclusion():
    return _public(json_response(log.inclusion(db(), _required_int("index"), _optional_int("tree_size"))))


@bp.get("/proof/consistency")
@allow(PUBLIC)
def consistency():
    return _public(json_response(log.consistency(db(), _required_int("first"), _optional_int("second"))))


@bp.get("/entries/<int:index>/proof")
@allow(PUBLIC)
def proof_file(index: int):
    """The C2SP tlog-proof file of entry ``index`` against the newest checkpoint, to download and keep."""
    body = log.proof_file(db(), index)
    response = _public(Response(body, content_type="text/plain; charset=utf-8"))
    response.headers["Content-Disposition"] = f'attachment; filename="decision-log-entry-{index}.tlog-proof"'
    return response
