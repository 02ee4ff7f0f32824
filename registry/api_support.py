"""Small helpers the REST handlers share: reading a JSON body, Idempotency-Key replay, JSON answers."""

from __future__ import annotations

import json as stdjson
from collections.abc import Callable

import orjson
from flask import Response, current_app, json, request
from werkzeug.exceptions import NotFound
from werkzeug.routing import IntegerConverter

from registry import idempotency
from registry.access import current_actor
from registry.errors import BadRequest, PayloadTooLarge, Unprocessable, UnsupportedMediaType, ValidationFailed
from registry.request_db import db
from schemas.validation import FieldError

IDEMPOTENCY_HEADER = "Idempotency-Key"


# Keys sorted and UTF-8 as flask.json.dumps(ensure_ascii=False) writes them (without its spaces); dates and the other
# values Flask's own JSON knows go through its `default`, as before.
_ORJSON_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME


def dumps(body) -> bytes:
    """An answer's JSON, written by orjson: a library entry with its audit reports took 3 ms with the standard
    library and takes 0.2 ms this way. What orjson cannot write (an integer beyond 64 bits) is written by the
    standard library instead."""
    try:
        return orjson.dumps(body, default=current_app.json.default, option=_ORJSON_OPTIONS)
    except orjson.JSONEncodeError:
        return json.dumps(body, ensure_ascii=False).encode("utf-8")


def json_response(body, status: int = 200, headers: dict | None = None) -> Response:
    response = Response(dumps(body), status=status, mimetype="application/json")
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def json_body(*, allowed: frozenset[str] | None = None) -> dict:
    """The request's JSON object. Raises UnsupportedMediaType, PayloadTooLarge, BadRequest (malformed) or
    Unprocessable (not an object, or a top-level member not in ``allowed``)."""
    if request.mimetype != "application/json":
        raise UnsupportedMediaType("Send the body as application/json.", code="json_required")
    limit = int(current_app.config["MAX_DOCUMENT_BYTES"])
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"A JSON body may have at most {limit} bytes.", code="body_too_large")
    raw = request.get_data(cache=True)
    if len(raw) > limit:
        raise PayloadTooLarge(f"A JSON body may have at most {limit} bytes.", code="body_too_large")
    try:
        body = stdjson.loads(raw.decode("utf-8"), parse_constant=_no_constants)
    except RecursionError:
        raise BadRequest("The JSON body is nested too deeply.", code="malformed_json") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"The body is not valid JSON: {exc}", code="malformed_json") from None
    if not isinstance(body, dict):
        raise Unprocessable("The body must be a JSON object.", code="object_required", pointer="")
    unknown = sorted(set(body) - allowed) if allowed is not None else []
    if unknown:
        raise ValidationFailed(
            f"Unknown field(s): {', '.join(unknown)}; this request takes {', '.join(sorted(allowed))}.",
            code="unknown_field",
            errors=[
                FieldError(
                    "/" + name.replace("~", "~0").replace("/", "~1"),
                    "additionalProperties",
                    f"Unknown field {name!r}.",
                    f"未知字段“{name}”。",
                )
                for name in unknown
            ],
        )
    return body


def _no_constants(name: str):
    raise ValueError(f"{name} is not a JSON number")


def idempotent(
    work: Callable[[], tuple[int, dict]],
    *,
    location: Callable[[dict], str] | None = None,
    request_identity: Callable[[], bytes] | None = None,
) -> Response:
    """Run ``work`` (which returns status and body) once per Idempotency-Key, and commit.

    A retry with the same key and the same request gets the first answer again (``Idempotent-Replayed: true``);
    the same key with a different request is refused (422). Without the header, the work simply runs.
    ``request_identity`` gives the bytes that make two requests "the same" when the raw body cannot (a multipart
    upload has a new boundary each time it is sent); by default the raw body.
    """
    key = request.headers.get(IDEMPOTENCY_HEADER)
    actor = current_actor()
    session = db()
    headers: dict[str, str] = {}
    if key is None:
        status, body = work()
        session.commit()
    else:
        if not 1 <= len(key) <= 255 or not key.isprintable():
            raise BadRequest("An Idempotency-Key has 1 to 255 printable characters.", code="bad_idempotency_key")
        operation = f"{request.method} {request.path}"
        identity = request_identity() if request_identity is not None else request.get_data(cache=True)
        fingerprint = idempotency.fingerprint(operation, identity)
        record = idempotency.find(
            session=session, user_id=actor.user_id, key=key, operation=operation, request_sha256=fingerprint
        )
        if record is not None:
            status, body = record.status_code, record.response
            headers["Idempotent-Replayed"] = "true"
        else:
            status, body = work()
            idempotency.remember(
                session=session,
                user_id=actor.user_id,
                key=key,
                operation=operation,
                request_sha256=fingerprint,
                status_code=status,
                response=body,
            )
            session.commit()
    if location is not None and status == 201:
        headers["Location"] = location(body)
    return json_response(body, status, headers)


# The largest identifier any table holds (PostgreSQL INTEGER); a larger number in a query or a path names nothing,
# and handed to the database it overflows the column (a 500) instead of finding nothing.
MAX_ROW_ID = 2**31 - 1


class RowIdConverter(IntegerConverter):
    """``<int:…>`` in routes: a non-negative integer; one beyond MAX_ROW_ID names nothing, so it is a 404.

    (Not werkzeug's ``max=``: a value it refuses makes the router try the path's other methods, answering 405.)
    """

    def to_python(self, value: str) -> int:
        number = super().to_python(value)
        if number > MAX_ROW_ID:
            raise NotFound()  # the same answer as any address that names nothing
        return number


def int_arg(name: str, default: int) -> int:
    """The integer query parameter ``name`` (``default`` when absent). Raises Unprocessable naming /query/<name>
    if it is not an integer or is beyond ±MAX_ROW_ID (no page, index or size of this registry is that large)."""
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise Unprocessable(f"{name} must be an integer.", code="bad_query", pointer=f"/query/{name}") from None
    if abs(value) > MAX_ROW_ID:
        raise Unprocessable(
            f"{name} is out of range (at most {MAX_ROW_ID}).", code="bad_query", pointer=f"/query/{name}"
        )
    return value
