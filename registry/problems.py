"""RFC 9457 problem details: every error the API gives is one of these, as application/problem+json."""

from __future__ import annotations

import logging

from flask import Flask, Response, json, request
from sqlalchemy.exc import DisconnectionError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm.exc import StaleDataError
from werkzeug.exceptions import HTTPException

from registry.errors import DomainError, IllegalTransition, ValidationFailed

MEDIA_TYPE = "application/problem+json"
TYPE_BASE = "urn:algorithm-registry:problem:"
log = logging.getLogger(__name__)


def problem(status: int, title: str, detail: str, *, code: str, **extensions) -> Response:
    body = {"type": TYPE_BASE + code, "title": title, "status": status, "detail": detail, "instance": request.path}
    body.update({k: v for k, v in extensions.items() if v is not None})
    response = Response(json.dumps(body, ensure_ascii=False), status=status, mimetype=MEDIA_TYPE)
    return response


def from_domain_error(error: DomainError) -> Response:
    extensions: dict = dict(error.extra)
    if isinstance(error, ValidationFailed):
        extensions["errors"] = [
            {"pointer": e.pointer, "detail": e.message, "detail_zh": e.message_zh, "keyword": e.keyword}
            for e in error.errors
        ]
    elif error.pointer is not None:
        extensions["errors"] = [
            {"pointer": error.pointer, "detail": error.message, "detail_zh": extensions.pop("detail_zh", None)}
        ]
        extensions["errors"] = [{k: v for k, v in e.items() if v is not None} for e in extensions["errors"]]
    if isinstance(error, IllegalTransition):
        extensions["current_state"] = error.current_state
        extensions["allowed_actions"] = list(error.allowed_actions)
    response = problem(error.status, _TITLES.get(error.status, "Error"), error.message, code=error.code, **extensions)
    if error.status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="registry"'
    if "retry_after" in error.extra:
        response.headers["Retry-After"] = str(error.extra["retry_after"])
    return response


_TITLES = {
    400: "Bad request",
    401: "Authentication required",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Payload too large",
    415: "Unsupported media type",
    422: "Unprocessable content",
    429: "Too many requests",
    500: "Internal server error",
    503: "Service unavailable",
    507: "Insufficient storage",
}


def from_http_exception(error: HTTPException) -> Response:
    code = (error.name or "error").lower().replace(" ", "_")
    detail = error.description or error.name
    if error.code == 413:
        detail = "The request is larger than this registry accepts."
    response = problem(error.code or 500, _TITLES.get(error.code, error.name), detail, code=code)
    if error.code == 405 and getattr(error, "valid_methods", None):
        response.headers["Allow"] = ", ".join(error.valid_methods)
    if error.code == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="registry"'
    return response


def wants_problem() -> bool:
    """API paths, schema paths and the health check answer with problem+json; pages answer with HTML."""
    return request.path.startswith(("/api/", "/schemas/")) or request.path == "/healthz"


def register(app: Flask, html_error) -> None:
    """Install the handlers: problem+json on the API, ``html_error(status, message)`` on pages."""

    @app.errorhandler(DomainError)
    def _domain(error: DomainError):
        if wants_problem():
            return from_domain_error(error)
        return html_error(error.status, error.message)

    @app.errorhandler(HTTPException)
    def _http(error: HTTPException):
        if wants_problem():
            return from_http_exception(error)
        return html_error(error.code or 500, error.description or error.name)

    @app.errorhandler(StaleDataError)
    @app.errorhandler(IntegrityError)
    def _concurrent(_error: Exception):
        # Two requests changed the same record at once (optimistic locking, or a unique key taken meanwhile):
        # this one was rolled back whole; trying again sees the other's change.
        message = (
            "Someone else changed this record at the same moment; nothing of yours was saved. Reload and try again."
        )
        if wants_problem():
            return problem(409, "Conflict", message, code="concurrent_change")
        return html_error(409, message)

    @app.errorhandler(OperationalError)
    @app.errorhandler(InterfaceError)
    @app.errorhandler(DisconnectionError)
    @app.errorhandler(PoolTimeout)
    def _database_unavailable(error: Exception):
        # The database cannot be reached or is busy (restarting, locked by another process, out of connections):
        # this request's transaction was rolled back whole; the pool reconnects (pre-ping) once it is back.
        log.warning("database unavailable on %s %s: %s", request.method, request.path, error)
        message = "The database is not available at the moment; nothing was saved. Try again shortly."
        if wants_problem():
            response = problem(503, "Service unavailable", message, code="database_unavailable")
        else:
            try:
                response = app.make_response(html_error(503, message))
            except Exception:  # the page itself needs the database (the signed-in account): answer in plain text
                response = Response(message, status=503, mimetype="text/plain")
        response.headers["Retry-After"] = "5"
        return response

    @app.errorhandler(Exception)
    def _unexpected(error: Exception):
        log.exception("unhandled error on %s %s", request.method, request.path)
        if wants_problem():
            return problem(
                500, "Internal server error", "Something went wrong on our side; nothing was saved.", code="internal"
            )
        return html_error(500, "Something went wrong on our side; nothing was saved.")
