"""Public, read-only contract endpoints: the JSON Schemas, the OpenAPI document, cities, the lifecycle, health."""

from __future__ import annotations

from flask import Blueprint, current_app, url_for
from sqlmodel import text

import schemas as schema_files
from registry import openapi
from registry.access import allow
from registry.api_support import json_response
from registry.authz import PUBLIC
from registry.cities import service as cities
from registry.errors import NotFound
from registry.filings import lifecycle
from registry.request_db import db

bp = Blueprint("meta", __name__)


@bp.get("/schemas/")
@allow(PUBLIC)
def schema_index():
    return json_response(
        {
            "items": [
                {
                    "name": name,
                    "$id": schema_files.load(name)["$id"],
                    "url": url_for("meta.schema_document", name=name, _external=True),
                }
                for name in schema_files.NAMES
            ]
        }
    )


@bp.get("/schemas/<name>.json")
@allow(PUBLIC)
def schema_document(name: str):
    if name not in schema_files.NAMES:
        raise NotFound(f"No schema named {name!r}.", code="schema_not_found")
    response = json_response(schema_files.load(name))
    response.mimetype = "application/schema+json"
    response.headers["Access-Control-Allow-Origin"] = "*"
    response.cache_control.public = True
    response.cache_control.max_age = 3600
    return response


@bp.get("/api/v1/openapi.json")
@allow(PUBLIC)
def openapi_document():
    response = json_response(openapi.document(current_app))
    response.headers["Access-Control-Allow-Origin"] = "*"
    return response


@bp.get("/api/v1/cities")
@allow(PUBLIC)
def list_cities():
    return json_response(
        {
            "items": [
                {"code": c.code, "name_zh": c.name_zh, "name_en": c.name_en} for c in cities.list_cities(session=db())
            ]
        }
    )


@bp.get("/api/v1/lifecycle")
@allow(PUBLIC)
def lifecycle_table():
    """The lifecycle as data: every state, and every transition with who may take it."""
    return json_response(
        {
            "states": [s.value for s in lifecycle.State],
            "transitions": [
                {
                    "action": t.action.value,
                    "from": sorted(s.value for s in t.sources),
                    "to": t.target.value,
                    "by": sorted(t.actors),
                    "reason_required": t.reason_required,
                }
                for t in lifecycle.TRANSITIONS.values()
            ],
        }
    )


@bp.get("/healthz")
@allow(PUBLIC)
def health():
    db().exec(text("SELECT 1"))
    return json_response({"status": "ok"})
