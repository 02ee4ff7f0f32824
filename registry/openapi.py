"""The OpenAPI 3.1 document of /api/v1. Request and document bodies refer to the published JSON Schemas.

Written as data rather than generated from docstrings: the API is small, the schemas already exist as JSON
Schema 2020-12 (which OpenAPI 3.1 uses as is), and tests/test_openapi.py checks that every API route is
described here and every path described here exists.
"""

from __future__ import annotations

from flask import Flask

import schemas as schema_files
from registry.api_support import MAX_ROW_ID
from registry.notifications.texts import Kind as NotificationKind

PROBLEM = {"$ref": "#/components/responses/Problem"}


def _schema_ref(name: str) -> dict:
    return {"$ref": f"/schemas/{name}.json"}


def _json_body(schema: dict, required: bool = True) -> dict:
    return {"required": required, "content": {"application/json": {"schema": schema}}}


def _json(schema: dict, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _op(
    summary: str,
    *,
    tags: list[str],
    responses: dict,
    security: bool = True,
    body: dict | None = None,
    parameters: list | None = None,
    idempotent: bool = False,
) -> dict:
    op: dict = {"summary": summary, "tags": tags, "responses": dict(responses)}
    # 429: too many unknown tokens from the caller's address (registry.access); 503: the database is away.
    for status in ("400", "401", "403", "404", "409", "413", "415", "422", "429", "503"):
        op["responses"].setdefault(status, PROBLEM)
    if not security:
        op["security"] = []
        for status in ("401", "403", "409", "413", "415", "429"):
            op["responses"].pop(status, None)
    params = list(parameters or [])
    if idempotent:
        params.append({"$ref": "#/components/parameters/IdempotencyKey"})
    if params:
        op["parameters"] = params
    if body is not None:
        op["requestBody"] = body
    return op


def _text(description: str) -> dict:
    return {"description": description, "content": {"text/plain": {"schema": {"type": "string"}}}}


def _int_query(name: str, description: str, *, required: bool = False) -> dict:
    return {
        "name": name,
        "in": "query",
        "required": required,
        "description": description,
        "schema": {"type": "integer", "minimum": 0},
    }


HEX_HASH = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
ROW_ID = {"type": "integer", "minimum": 1, "maximum": MAX_ROW_ID}  # larger: 404

DECISION_ID = {"name": "decision_id", "in": "path", "required": True, "schema": ROW_ID}
FILING_ID = {"name": "filing_id", "in": "path", "required": True, "schema": ROW_ID}
JOB_ID = {"name": "job_id", "in": "path", "required": True, "schema": ROW_ID}
NOTIFICATION_ID = {
    "name": "notification_id",
    "in": "path",
    "required": True,
    "schema": ROW_ID,
}
DATASET_NAME = {"name": "name", "in": "path", "required": True, "schema": {"type": "string", "maxLength": 100}}
REASON_BODY = {
    "required": False,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "additionalProperties": False,
                "properties": {"reason": {"type": "string", "maxLength": 4000}},
            }
        }
    },
}


# --- the public library (issue 6): read-only, no token, CORS open ---------------------------------------------------

LIBRARY_ENTRY = {"$ref": "/schemas/library-entry.json"}
ENTRY_KEY = {
    "name": "filing_number",
    "in": "path",
    "required": True,
    "description": "The entry's filing number (e.g. 豫算备410100-2026-0001); a rejected filing, which has none, "
    "by its id",
    "schema": {"type": "string"},
}
_NULLABLE_TIME = {"type": ["string", "null"], "format": "date-time"}
_CITY = {
    "type": "object",
    "required": ["code", "name_zh", "name_en"],
    "properties": {"code": {"type": "string"}, "name_zh": {"type": "string"}, "name_en": {"type": "string"}},
}
_ENTRY_LINKS = {
    "type": "object",
    "description": "The entry's page, its JSON and CSV, and its API address",
    "properties": {name: {"type": "string", "format": "uri"} for name in ("page", "json", "csv", "api")},
}
_NAMED = {
    "type": "object",
    "required": ["filing_number", "name_zh", "name_en", "next_audit_due"],
    "properties": {
        "filing_number": {"type": ["string", "null"]},
        "name_zh": {"type": "string"},
        "name_en": {"type": "string"},
        "next_audit_due": _NULLABLE_TIME,
    },
}


def _library_query() -> list[dict]:
    return [
        {
            "name": "q",
            "in": "query",
            "description": "Search text: names, purpose, department, city and scenario; Chinese terms of two "
            "characters or more (医保, 低保) and English words, all must match",
            "schema": {"type": "string", "maxLength": 200},
        },
        {"name": "city", "in": "query", "description": "A city code of the registry", "schema": {"type": "string"}},
        {
            "name": "scenario",
            "in": "query",
            "schema": {"$ref": "/schemas/technical-document.json#/properties/scenario"},
        },
        {"name": "tier", "in": "query", "schema": {"enum": ["I", "II", "III", "IV"]}},
        {
            "name": "decision",
            "in": "query",
            "description": "The outcome of the filing's decision (outcome=, as on the library page, works too)",
            "schema": {"enum": ["approved", "approved_with_conditions", "rejected"]},
        },
        {
            "name": "state",
            "in": "query",
            "schema": {
                "enum": [
                    "approved",
                    "approved_with_conditions",
                    "rejected",
                    "suspended",
                    "revoked",
                    "expired",
                    "superseded",
                ]
            },
        },
        {
            "name": "year",
            "in": "query",
            "description": "Year of the decision",
            "schema": {"type": "integer", "minimum": 2000, "maximum": 2200},
        },
        {
            "name": "sort",
            "in": "query",
            "description": "relevance (the default when searching), newest (newest decision first, the default "
            "otherwise), name, city, tier (highest first)",
            "schema": {"enum": ["relevance", "newest", "name", "city", "tier"]},
        },
        {"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1}},
        {"name": "per_page", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 200}},
    ]


def _library_paths() -> dict:
    cors = "Open to every origin (Access-Control-Allow-Origin: *), errors and preflights included."
    return {
        "/api/v1/library": {
            "get": _op(
                "Search the public library: filters, sorting and pages as on the library page; a bad value is a "
                "422 naming /query/<parameter>. " + cors,
                tags=["library"],
                security=False,
                parameters=_library_query(),
                responses={"200": _json({"$ref": "#/components/schemas/LibraryPage"}, "A page of entries")},
            )
        },
        "/api/v1/library/{filing_number}": {
            "parameters": [ENTRY_KEY],
            "get": _op(
                "One public entry: what /library/<filing number>.json gives (404 for anything not public). " + cors,
                tags=["library"],
                security=False,
                responses={"200": _json(LIBRARY_ENTRY, "The entry")},
            ),
        },
        "/api/v1/library/standings": {
            "get": _op(
                "City standings (红黄绿灯): each city's light, the counts behind it and the rules that give it. "
                + cors,
                tags=["library"],
                security=False,
                responses={"200": _json({"$ref": "#/components/schemas/LibraryStandings"}, "The standings")},
            )
        },
        "/api/v1/library/statistics": {
            "get": _op(
                "Statistics: public filings by city, scenario, tier, state and decision, and decisions per month. "
                + cors,
                tags=["library"],
                security=False,
                responses={"200": _json({"$ref": "#/components/schemas/LibraryStatistics"}, "The statistics")},
            )
        },
    }


def _counted(key: str, key_schema: dict) -> dict:
    return {
        "type": "array",
        "items": {
            "type": "object",
            "required": [key, "count"],
            "properties": {key: key_schema, "count": {"type": "integer", "minimum": 0}},
        },
    }


def _library_schemas() -> dict:
    summary = {
        "type": "object",
        "description": "A public filing as a row of the library",
        "required": ["filing_number", "filing_id", "name_zh", "name_en", "version", "city", "state", "links"],
        "properties": {
            "filing_number": {"type": ["string", "null"], "description": "None for a rejected filing"},
            "filing_id": {"type": "integer"},
            "name_zh": {"type": "string"},
            "name_en": {"type": "string"},
            "version": {"type": "string"},
            "city": _CITY,
            "department": {"type": ["string", "null"]},
            "scenario": {"type": ["string", "null"]},
            "risk_tier": {"type": ["string", "null"]},
            "state": {"type": "string"},
            "decided_at": _NULLABLE_TIME,
            "next_audit_due": _NULLABLE_TIME,
            "outcome": {"type": ["string", "null"], "description": "The outcome of the filing's decision"},
            "decision_date": {**_NULLABLE_TIME, "description": "When the decision was taken (rejections too)"},
            "links": _ENTRY_LINKS,
        },
    }
    return {
        "LibrarySummary": summary,
        "LibraryPage": {
            "type": "object",
            "required": ["items", "total", "page", "per_page", "pages", "sort", "links"],
            "properties": {
                "items": {"type": "array", "items": {"$ref": "#/components/schemas/LibrarySummary"}},
                "total": {"type": "integer", "description": "Entries matching the query, on every page"},
                "page": {"type": "integer"},
                "per_page": {"type": "integer"},
                "pages": {"type": "integer"},
                "sort": {"enum": ["relevance", "newest", "name", "city", "tier"]},
                "links": {
                    "type": "object",
                    "description": "This page, the first, the last, and the previous and next when there are",
                    "properties": {
                        name: {"type": "string", "format": "uri"} for name in ("self", "first", "last", "prev", "next")
                    },
                },
            },
        },
        "LibraryStandings": {
            "type": "object",
            "required": ["as_of", "rules", "totals", "items"],
            "properties": {
                "as_of": {"type": "string", "format": "date-time"},
                "rules": {
                    "type": "array",
                    "description": "The rules, red first, in Chinese and English",
                    "items": {
                        "type": "object",
                        "required": ["colour", "zh", "en"],
                        "properties": {
                            "colour": {"enum": ["red", "yellow", "green"]},
                            "zh": {"type": "string"},
                            "en": {"type": "string"},
                        },
                    },
                },
                "totals": {
                    "type": "object",
                    "description": "How many cities have each light",
                    "properties": {c: {"type": "integer"} for c in ("red", "yellow", "green")},
                },
                "items": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["city", "colour", "counts", "reaudit_overdue_filings", "reaudit_failed_filings"],
                        "properties": {
                            "city": _CITY,
                            "colour": {"enum": ["red", "yellow", "green"]},
                            "counts": {
                                "type": "object",
                                "description": "public_filings; in_force (approved, with or without conditions); "
                                "reaudit_overdue and reaudit_failed (in force: red); changes_unanswered (sent "
                                "back for changes 30 days or more ago) and reaudit_due_soon (within 30 days): "
                                "yellow",
                                "properties": {
                                    name: {"type": "integer", "minimum": 0}
                                    for name in (
                                        "public_filings",
                                        "in_force",
                                        "reaudit_overdue",
                                        "reaudit_failed",
                                        "changes_unanswered",
                                        "reaudit_due_soon",
                                    )
                                },
                            },
                            "reaudit_overdue_filings": {"type": "array", "items": _NAMED},
                            "reaudit_failed_filings": {"type": "array", "items": _NAMED},
                        },
                    },
                },
            },
        },
        "LibraryStatistics": {
            "type": "object",
            "required": [
                "as_of",
                "public_filings",
                "by_city",
                "by_scenario",
                "by_tier",
                "by_state",
                "by_decision",
                "decisions_by_month",
            ],
            "properties": {
                "as_of": {"type": "string", "format": "date-time"},
                "public_filings": {"type": "integer"},
                "by_city": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["code", "name_zh", "name_en", "count"],
                        "properties": {
                            "code": {"type": "string"},
                            "name_zh": {"type": "string"},
                            "name_en": {"type": "string"},
                            "count": {"type": "integer", "minimum": 0},
                        },
                    },
                },
                "by_scenario": _counted("scenario", {"type": ["string", "null"]}),
                "by_tier": _counted("tier", {"type": ["string", "null"]}),
                "by_state": _counted("state", {"type": "string"}),
                "by_decision": _counted("outcome", {"enum": ["approved", "approved_with_conditions", "rejected"]}),
                "decisions_by_month": {
                    "type": "array",
                    "description": "Effective decisions per calendar month (UTC), by outcome; months between the "
                    "first and the last are listed with zeros",
                    "items": {
                        "type": "object",
                        "required": ["month", "approved", "approved_with_conditions", "rejected", "total"],
                        "properties": {
                            "month": {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}$"},
                            "approved": {"type": "integer"},
                            "approved_with_conditions": {"type": "integer"},
                            "rejected": {"type": "integer"},
                            "total": {"type": "integer"},
                        },
                    },
                },
            },
        },
    }


def _open_data() -> dict:
    """The library's data files, which are not under /api/v1 and so not in ``paths``: where, what, which columns."""
    from registry.library import opendata

    def columns(spec) -> list[dict]:
        return [{"name": name, "description": description} for name, description in spec]

    return {
        "description": "The public library as open data: no login, read-only, CORS open. CSV files are UTF-8 with "
        "a byte-order mark (Excel opens the Chinese correctly) and CRLF line ends (RFC 4180); a text cell that "
        "would start like a spreadsheet formula (= + - @) starts with an apostrophe.",
        "files": [
            {
                "path": "/library.json",
                "media_type": "application/json",
                "description": "Every public entry's list row (as LibrarySummary) with its links, streamed: "
                "{generated_at, entry_schema, links, items, total}",
            },
            {
                "path": "/library.csv",
                "media_type": "text/csv",
                "description": "One row per public filing",
                "columns": columns(opendata.LIBRARY_CSV_COLUMNS),
            },
            {
                "path": "/library/{filing_number}.json",
                "media_type": "application/json",
                "description": "One entry, valid against the library-entry schema",
                "schema": "/schemas/library-entry.json",
            },
            {
                "path": "/library/{filing_number}.csv",
                "media_type": "text/csv",
                "description": "One entry's key facts and its audits' figures (overall, per group and per "
                "attribute value with intervals, criteria, claimed vs measured), one per row",
                "columns": columns(opendata.ENTRY_CSV_COLUMNS),
            },
            {
                "path": "/library/feed.atom",
                "media_type": "application/atom+xml",
                "description": f"Atom 1.0 (RFC 4287): the newest {opendata.FEED_SIZE} entries of the decision log "
                "(decisions, suspensions, revocations, expiries, supersessions), newest first, each with a tag: id "
                "and links to the entry page and to the log entry",
            },
        ],
    }


def document(app: Flask) -> dict:
    filing_ref = {"$ref": "#/components/schemas/Filing"}
    return {
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "info": {
            "title": "Algorithm filing and audit registry API (人工智能审批算法备案库)",
            "version": "1.0.0",
            "description": "City teams file algorithms; provincial reviewers review them. Errors are RFC 9457 "
            "problem details (application/problem+json) naming each field by JSON Pointer.",
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": {
            "/api/v1/filings": {
                "get": _op(
                    "List the filings you may read, filtered by state, city, scenario and risk tier (filters only "
                    "narrow what you may read; an unknown value is a 422 naming /query/<parameter>)",
                    tags=["filings"],
                    parameters=[
                        {"name": "state", "in": "query", "schema": {"type": "string"}},
                        {
                            "name": "city",
                            "in": "query",
                            "description": "A city code of the registry (GB/T 2260)",
                            "schema": {"type": "string", "pattern": "^[0-9]{6}$"},
                        },
                        {
                            "name": "scenario",
                            "in": "query",
                            "schema": {"$ref": "/schemas/technical-document.json#/properties/scenario"},
                        },
                        {"name": "tier", "in": "query", "schema": {"enum": ["I", "II", "III", "IV"]}},
                        {
                            "name": "sort",
                            "in": "query",
                            "description": "waiting: filings awaiting the province first, longest in their state "
                            "first (reviewers' default); -waiting: the same, shortest first; updated: latest change "
                            "first (city teams' default)",
                            "schema": {"enum": ["waiting", "-waiting", "updated"]},
                        },
                        {"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1}},
                        {
                            "name": "per_page",
                            "in": "query",
                            "schema": {"type": "integer", "minimum": 1, "maximum": 200},
                        },
                    ],
                    responses={"200": _json({"$ref": "#/components/schemas/FilingPage"}, "A page of filings")},
                ),
                "post": _op(
                    "File a new draft (city teams)",
                    tags=["filings"],
                    idempotent=True,
                    body={"required": True, "content": {"application/json": {"schema": _schema_ref("filing")}}},
                    responses={"201": _json(filing_ref, "The new draft")},
                ),
            },
            "/api/v1/filings/{filing_id}": {
                "parameters": [FILING_ID],
                "get": _op("Read a filing", tags=["filings"], responses={"200": _json(filing_ref, "The filing")}),
                "patch": _op(
                    "Replace the documents of a draft",
                    tags=["filings"],
                    body=_json_body(
                        {
                            "type": "object",
                            "additionalProperties": False,
                            "properties": {"technical_document": {"type": "object"}, "test_report": {"type": "object"}},
                        }
                    ),
                    responses={"200": _json(filing_ref, "The updated draft")},
                ),
            },
            "/api/v1/filings/{filing_id}/attachments": {
                "parameters": [FILING_ID],
                "post": _op(
                    "Upload the ONNX model (kind=model) or a PDF document (kind=document)",
                    tags=["filings"],
                    body={
                        "required": True,
                        "content": {
                            "multipart/form-data": {
                                "schema": {
                                    "type": "object",
                                    "required": ["file"],
                                    "properties": {
                                        "kind": {"type": "string", "enum": ["model", "document"]},
                                        "file": {"type": "string", "contentMediaType": "application/octet-stream"},
                                    },
                                }
                            }
                        },
                    },
                    responses={
                        "201": _json({"$ref": "#/components/schemas/Attachment"}, "The stored attachment"),
                        "507": PROBLEM,  # no room left in the file store; nothing kept
                    },
                    idempotent=True,
                ),
            },
            "/api/v1/filings/{filing_id}/submit": {
                "parameters": [FILING_ID],
                "post": _op(
                    "Submit a complete draft",
                    tags=["lifecycle"],
                    idempotent=True,
                    body=REASON_BODY,
                    responses={"200": _json(filing_ref, "The submitted filing")},
                ),
            },
            "/api/v1/filings/{filing_id}/actions/{action}": {
                "parameters": [
                    FILING_ID,
                    {
                        "name": "action",
                        "in": "path",
                        "required": True,
                        "schema": {
                            "type": "string",
                            "enum": [
                                "submit",
                                "resubmit",
                                "withdraw",
                                "start_review",
                                "request_changes",
                                "suspend",
                                "revoke",
                            ],
                        },
                    },
                ],
                "post": _op(
                    "Take a lifecycle step",
                    tags=["lifecycle"],
                    idempotent=True,
                    body=REASON_BODY,
                    responses={"200": _json(filing_ref, "The filing after the step")},
                ),
            },
            "/api/v1/filings/{filing_id}/history": {
                "parameters": [FILING_ID],
                "get": _op(
                    "The filing's lifecycle trail",
                    tags=["lifecycle"],
                    responses={"200": _json({"$ref": "#/components/schemas/TransitionList"}, "Every transition")},
                ),
            },
            "/api/v1/filings/{filing_id}/comments": {
                "parameters": [FILING_ID],
                "get": _op(
                    "The comment thread",
                    tags=["comments"],
                    responses={"200": _json({"$ref": "#/components/schemas/CommentList"}, "The thread")},
                ),
                "post": _op(
                    "Write a comment",
                    tags=["comments"],
                    idempotent=True,
                    body=_json_body(
                        {
                            "type": "object",
                            "required": ["body"],
                            "additionalProperties": False,
                            "properties": {
                                "body": {"type": "string", "minLength": 1, "maxLength": 10000},
                                "reviewer_only": {"type": "boolean"},
                            },
                        }
                    ),
                    responses={"201": _json({"$ref": "#/components/schemas/Comment"}, "The comment")},
                ),
            },
            "/api/v1/reference-datasets": {
                "get": _op(
                    "The reference data sets audits run on: the shipped library and the active uploads (never their "
                    "rows; reviewers, administrators)",
                    tags=["audits"],
                    responses={"200": _json({"$ref": "#/components/schemas/ReferenceDatasetList"}, "The data sets")},
                ),
                "post": _op(
                    "Upload a reference data set (administrators): its descriptor and its data file, checked whole "
                    "before anything is kept",
                    tags=["audits"],
                    body={
                        "required": True,
                        "content": {
                            "multipart/form-data": {
                                "schema": {
                                    "type": "object",
                                    "required": ["descriptor", "data"],
                                    "properties": {
                                        "descriptor": {
                                            **_schema_ref("reference-dataset"),
                                            "description": "The descriptor, a JSON file (or text field)",
                                        },
                                        "data": {
                                            "type": "string",
                                            "contentMediaType": "application/octet-stream",
                                            "description": "The data file: CSV or Parquet, as the descriptor's "
                                            "format says; at most MAX_DATASET_BYTES",
                                        },
                                    },
                                },
                                "encoding": {"descriptor": {"contentType": "application/json"}},
                            }
                        },
                    },
                    responses={
                        "201": _json({"$ref": "#/components/schemas/UploadedReferenceDataset"}, "The uploaded data set")
                    },
                ),
            },
            "/api/v1/reference-datasets/{name}/retire": {
                "parameters": [DATASET_NAME],
                "post": _op(
                    "Retire an uploaded reference data set (administrators): new audits can no longer choose it; "
                    "audits that used it still read it",
                    tags=["audits"],
                    responses={
                        "200": _json({"$ref": "#/components/schemas/UploadedReferenceDataset"}, "The retired data set")
                    },
                ),
            },
            "/api/v1/filings/{filing_id}/audits": {
                "parameters": [FILING_ID],
                "get": _op(
                    "The filing's audits, newest first",
                    tags=["audits"],
                    responses={"200": _json({"$ref": "#/components/schemas/AuditJobList"}, "The audits")},
                ),
                "post": _op(
                    "Start an audit of the filing's model on a reference data set (reviewers)",
                    tags=["audits"],
                    idempotent=True,
                    body=_json_body(
                        {
                            "type": "object",
                            "required": ["dataset"],
                            "additionalProperties": False,
                            "properties": {
                                "dataset": {"type": "string"},
                                "sensitive_attributes": {
                                    "type": "array",
                                    "items": {"type": "string"},
                                    "minItems": 1,
                                    "uniqueItems": True,
                                },
                                "seed": {"type": "integer", "minimum": 0},
                                "replicates": {"type": "integer", "minimum": 0, "maximum": 10000},
                            },
                        }
                    ),
                    responses={
                        "202": {
                            **_json({"$ref": "#/components/schemas/AuditJob"}, "The queued audit"),
                            "headers": {"Location": {"schema": {"type": "string"}}},
                        }
                    },
                ),
            },
            "/api/v1/audits/{job_id}": {
                "parameters": [JOB_ID],
                "get": _op(
                    "One audit: state, progress, error, verdict",
                    tags=["audits"],
                    responses={"200": _json({"$ref": "#/components/schemas/AuditJob"}, "The audit")},
                ),
            },
            "/api/v1/audits/{job_id}/report": {
                "parameters": [JOB_ID],
                "get": _op(
                    "The audit report (409 until the audit is done)",
                    tags=["audits"],
                    responses={"200": _json(_schema_ref("audit-report"), "The audit report")},
                ),
            },
            "/api/v1/reaudits/attention": {
                "get": _op(
                    "What the re-audit schedule puts before reviewers: failed re-audits, then overdue ones (soonest "
                    "expiry first), then those due within 30 days; one item per filing (reviewers, administrators)",
                    tags=["audits"],
                    responses={"200": _json({"$ref": "#/components/schemas/ReauditAttentionList"}, "The filings")},
                )
            },
            "/api/v1/filings/{filing_id}/decisions": {
                "parameters": [FILING_ID],
                "get": _op(
                    "The filing's decisions (proposed, effective, withdrawn)",
                    tags=["decisions"],
                    responses={"200": _json({"$ref": "#/components/schemas/DecisionList"}, "The decisions")},
                ),
                "post": _op(
                    "Propose a decision (reviewers): effective at once on tier I/II, else awaits a countersignature",
                    tags=["decisions"],
                    idempotent=True,
                    body=_json_body(
                        {
                            "type": "object",
                            "required": ["outcome"],
                            "additionalProperties": False,
                            "properties": {
                                "outcome": {"enum": ["approved", "approved_with_conditions", "rejected"]},
                                "conditions": {
                                    "type": "array",
                                    "items": {"type": "string", "maxLength": 2000},
                                    "description": "At least one when approved_with_conditions.",
                                },
                                "reasons": {
                                    "type": "array",
                                    "items": {"type": "string", "maxLength": 4000},
                                    "description": "At least one when rejected.",
                                },
                                "audit_job_ids": {
                                    "type": "array",
                                    "items": {"type": "integer"},
                                    "description": "Done audits of this filing the decision rests on.",
                                },
                                "note": {"type": "string", "maxLength": 4000},
                            },
                        }
                    ),
                    responses={"201": _json({"$ref": "#/components/schemas/Decision"}, "The decision")},
                ),
            },
            "/api/v1/decisions/{decision_id}": {
                "parameters": [DECISION_ID],
                "get": _op(
                    "Read a decision",
                    tags=["decisions"],
                    responses={"200": _json({"$ref": "#/components/schemas/Decision"}, "The decision")},
                ),
            },
            "/api/v1/decisions/{decision_id}/countersign": {
                "parameters": [DECISION_ID],
                "post": _op(
                    "Countersign a proposed decision (a reviewer other than the proposer): it takes effect",
                    tags=["decisions"],
                    idempotent=True,
                    responses={"200": _json({"$ref": "#/components/schemas/Decision"}, "The effective decision")},
                ),
            },
            "/api/v1/decisions/{decision_id}/withdraw": {
                "parameters": [DECISION_ID],
                "post": _op(
                    "Withdraw a proposal, or refuse to countersign it (reviewers; a reason is required)",
                    tags=["decisions"],
                    idempotent=True,
                    body=_json_body(
                        {
                            "type": "object",
                            "required": ["reason"],
                            "additionalProperties": False,
                            "properties": {"reason": {"type": "string", "minLength": 1, "maxLength": 2000}},
                        }
                    ),
                    responses={"200": _json({"$ref": "#/components/schemas/Decision"}, "The withdrawn decision")},
                ),
            },
            "/api/v1/decisions/{decision_id}/letter.pdf": {
                "parameters": [DECISION_ID],
                "get": _op(
                    "The decision letter as PDF (effective decisions only: 409 otherwise), in Chinese, or in English "
                    "with ?lang=en",
                    tags=["decisions"],
                    parameters=[{"name": "lang", "in": "query", "schema": {"enum": ["zh_CN", "en"]}}],
                    responses={
                        "200": {
                            "description": "The letter",
                            "content": {"application/pdf": {"schema": {"type": "string", "format": "binary"}}},
                        }
                    },
                ),
            },
            "/api/v1/notifications": {
                "get": _op(
                    "Your notifications, newest first (new comments, decisions, finished audits, re-audits due)",
                    tags=["notifications"],
                    parameters=[
                        {
                            "name": "unread",
                            "in": "query",
                            "schema": {"type": "boolean"},
                            "description": "true: only the unread ones",
                        },
                        {"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1}},
                        {
                            "name": "per_page",
                            "in": "query",
                            "schema": {"type": "integer", "minimum": 1, "maximum": 200},
                        },
                    ],
                    responses={
                        "200": _json({"$ref": "#/components/schemas/NotificationPage"}, "A page of notifications")
                    },
                )
            },
            "/api/v1/notifications/{notification_id}/read": {
                "parameters": [NOTIFICATION_ID],
                "post": _op(
                    "Mark one of your notifications read (another account's is 404)",
                    tags=["notifications"],
                    responses={"200": _json({"$ref": "#/components/schemas/Notification"}, "The notification")},
                ),
            },
            "/api/v1/notifications/read-all": {
                "post": _op(
                    "Mark all your notifications read",
                    tags=["notifications"],
                    responses={
                        "200": _json(
                            {
                                "type": "object",
                                "required": ["marked", "unread"],
                                "properties": {"marked": {"type": "integer"}, "unread": {"type": "integer"}},
                            },
                            "How many were unread",
                        )
                    },
                ),
            },
            "/api/v1/me": {
                "get": _op(
                    "Who the token belongs to",
                    tags=["accounts"],
                    responses={"200": _json({"type": "object"}, "The account")},
                )
            },
            "/api/v1/tokens": {
                "get": _op(
                    "Your API tokens (never the secrets)",
                    tags=["accounts"],
                    responses={"200": _json({"type": "object"}, "The tokens")},
                )
            },
            "/api/v1/tokens/{token_id}": {
                "parameters": [{"name": "token_id", "in": "path", "required": True, "schema": {"type": "integer"}}],
                "delete": _op(
                    "Revoke one of your tokens",
                    tags=["accounts"],
                    responses={"200": _json({"type": "object"}, "The revoked token")},
                ),
            },
            "/api/v1/cities": {
                "get": _op(
                    "The cities",
                    tags=["public"],
                    security=False,
                    responses={"200": _json({"type": "object"}, "Cities")},
                )
            },
            "/api/v1/lifecycle": {
                "get": _op(
                    "The lifecycle: states and transitions",
                    tags=["public"],
                    security=False,
                    responses={"200": _json({"type": "object"}, "The lifecycle")},
                )
            },
            "/api/v1/log/checkpoint": {
                "get": _op(
                    "The decision log's newest signed checkpoint: a C2SP tlog-checkpoint (origin, tree size, base64 "
                    "root hash) as a C2SP signed note, Ed25519",
                    tags=["decision log"],
                    security=False,
                    responses={"200": _text("The signed checkpoint")},
                )
            },
            "/api/v1/log/public-key": {
                "get": _op(
                    "The log's verifier key in signed-note form: name+keyid+base64key",
                    tags=["decision log"],
                    security=False,
                    responses={"200": _text("The verifier key")},
                )
            },
            "/api/v1/log/entries": {
                "get": _op(
                    "Entries [start, end) (at most 1,000): each leaf's exact bytes (base64 of RFC 8785 canonical "
                    "JSON) and RFC 6962 leaf hash",
                    tags=["decision log"],
                    security=False,
                    parameters=[_int_query("start", "First index (default 0)"), _int_query("end", "End, exclusive")],
                    responses={"200": _json({"$ref": "#/components/schemas/LogEntries"}, "The entries")},
                )
            },
            "/api/v1/log/entries/{index}/proof": {
                "parameters": [{"name": "index", "in": "path", "required": True, "schema": {"type": "integer"}}],
                "get": _op(
                    "The entry's C2SP tlog-proof file: its inclusion proof and the newest signed checkpoint",
                    tags=["decision log"],
                    security=False,
                    responses={"200": _text("The tlog-proof file (download)")},
                ),
            },
            "/api/v1/log/proof/inclusion": {
                "get": _op(
                    "RFC 9162 inclusion proof of entry index in the tree of tree_size entries (default: the newest)",
                    tags=["decision log"],
                    security=False,
                    parameters=[_int_query("index", "Leaf index", required=True), _int_query("tree_size", "Tree size")],
                    responses={"200": _json({"$ref": "#/components/schemas/InclusionProof"}, "The proof")},
                )
            },
            "/api/v1/log/proof/consistency": {
                "get": _op(
                    "RFC 9162 consistency proof between the trees of first and second entries (default: newest)",
                    tags=["decision log"],
                    security=False,
                    parameters=[_int_query("first", "Older size", required=True), _int_query("second", "Newer size")],
                    responses={"200": _json({"$ref": "#/components/schemas/ConsistencyProof"}, "The proof")},
                )
            },
            "/api/v1/openapi.json": {
                "get": _op(
                    "This document",
                    tags=["public"],
                    security=False,
                    responses={"200": _json({"type": "object"}, "OpenAPI")},
                )
            },
            **_library_paths(),
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description": "An API token (rgt_…)"}},
            "parameters": {
                "IdempotencyKey": {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "required": False,
                    "description": "A retried request with the same key returns the first answer and files nothing twice.",
                    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
                }
            },
            "responses": {
                "Problem": {
                    "description": "An RFC 9457 problem",
                    "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
                }
            },
            "schemas": {
                "LogEntries": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["index", "leaf", "leaf_hash"],
                        "properties": {
                            "index": {"type": "integer", "minimum": 0},
                            "leaf": {"type": "string", "contentEncoding": "base64"},
                            "leaf_hash": HEX_HASH,
                        },
                    },
                },
                "InclusionProof": {
                    "type": "object",
                    "required": ["index", "tree_size", "hashes"],
                    "properties": {
                        "index": {"type": "integer"},
                        "tree_size": {"type": "integer"},
                        "hashes": {"type": "array", "items": HEX_HASH},
                    },
                },
                "ConsistencyProof": {
                    "type": "object",
                    "required": ["first", "second", "hashes"],
                    "properties": {
                        "first": {"type": "integer"},
                        "second": {"type": "integer"},
                        "hashes": {"type": "array", "items": HEX_HASH},
                    },
                },
                "Problem": {
                    "type": "object",
                    "required": ["type", "title", "status", "detail"],
                    "properties": {
                        "type": {"type": "string"},
                        "title": {"type": "string"},
                        "status": {"type": "integer"},
                        "detail": {"type": "string"},
                        "instance": {"type": "string"},
                        "errors": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["pointer", "detail"],
                                "properties": {
                                    "pointer": {"type": "string"},
                                    "detail": {"type": "string"},
                                    "detail_zh": {"type": "string"},
                                    "keyword": {"type": "string"},
                                },
                            },
                        },
                        "current_state": {"type": "string"},
                        "allowed_actions": {"type": "array", "items": {"type": "string"}},
                    },
                },
                "Filing": {
                    "type": "object",
                    "required": ["id", "city_code", "state", "algorithm", "allowed_actions"],
                    "properties": {
                        "id": {"type": "integer"},
                        "city_code": {"type": "string"},
                        "state": {"type": "string"},
                        "algorithm": {"type": "object"},
                        "scenario": {"type": ["string", "null"]},
                        "risk_tier": {"type": ["string", "null"], "enum": ["I", "II", "III", "IV", None]},
                        "risk_assessment": {"type": ["object", "null"]},
                        "filing_number": {"type": ["string", "null"]},
                        "supersedes_filing_id": {"type": ["integer", "null"]},
                        "next_audit_due": {
                            "type": ["string", "null"],
                            "format": "date-time",
                            "description": "When the periodic re-audit falls due (decided filings; none for tier I)",
                        },
                        "technical_document": {"type": "object"},
                        "test_report": {"type": ["object", "null"]},
                        "allowed_actions": {"type": "array", "items": {"type": "string"}},
                    },
                },
                "FilingPage": {
                    "type": "object",
                    "required": ["items", "total", "page", "per_page"],
                    "properties": {
                        "items": {
                            "type": "array",
                            "items": {
                                "allOf": [
                                    filing_ref,
                                    {
                                        "type": "object",
                                        "required": ["in_state_since"],
                                        "properties": {
                                            "in_state_since": {
                                                "type": "string",
                                                "format": "date-time",
                                                "description": "When the filing entered its current state (its "
                                                "latest lifecycle step): how long it has waited",
                                            }
                                        },
                                    },
                                ]
                            },
                        },
                        "total": {"type": "integer"},
                        "page": {"type": "integer"},
                        "per_page": {"type": "integer"},
                        "sort": {"enum": ["waiting", "-waiting", "updated"]},
                    },
                },
                "Attachment": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "integer"},
                        "kind": {"type": "string"},
                        "sha256": {"type": "string"},
                        "filename": {"type": "string"},
                        "size": {"type": "integer"},
                    },
                },
                "AuditJob": {
                    "type": "object",
                    "required": ["id", "filing_id", "state", "progress"],
                    "properties": {
                        "id": {"type": "integer"},
                        "filing_id": {"type": "integer"},
                        "state": {"type": "string", "enum": ["queued", "running", "done", "failed"]},
                        "progress": {"type": "number", "minimum": 0, "maximum": 1},
                        "dataset": {"type": "string"},
                        "sensitive_attributes": {"type": "array", "items": {"type": "string"}},
                        "tier": {"type": "string"},
                        "error": {"type": ["string", "null"]},
                        "verdict": {"type": ["string", "null"]},
                        "report_sha256": {"type": ["string", "null"]},
                        "links": {"type": "object"},
                    },
                },
                "ReauditAttentionList": {
                    "type": "object",
                    "required": ["items"],
                    "properties": {
                        "items": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["kind", "filing", "reaudit", "next_audit_due", "expires_at"],
                                "properties": {
                                    "kind": {
                                        "enum": ["failed_reaudit", "overdue", "due_soon"],
                                        "description": "failed_reaudit: the latest re-audit failed or did not meet "
                                        "the policy; overdue: the re-audit date has passed (the filing expires at "
                                        "expires_at); due_soon: the re-audit falls due within 30 days",
                                    },
                                    "filing": filing_ref,
                                    "reaudit": {
                                        "description": "The failed re-audit, else the latest re-audit if any",
                                        "oneOf": [{"$ref": "#/components/schemas/AuditJob"}, {"type": "null"}],
                                    },
                                    "next_audit_due": {"type": ["string", "null"], "format": "date-time"},
                                    "expires_at": {
                                        "type": ["string", "null"],
                                        "format": "date-time",
                                        "description": "The re-audit date plus the tier's grace period",
                                    },
                                },
                            },
                        }
                    },
                },
                "ReferenceDataset": {
                    "type": "object",
                    "description": "A reference data set as reviewers choose it; never a row of its data.",
                    "required": ["name", "description", "rows", "sensitive_attributes", "default_sensitive"],
                    "properties": {
                        "name": {"type": "string"},
                        "description": {"type": "string"},
                        "rows": {"type": "integer"},
                        "sensitive_attributes": {"type": "array", "items": {"type": "string"}},
                        "default_sensitive": {"type": "array", "items": {"type": "string"}},
                    },
                },
                "ReferenceDatasetList": {
                    "type": "object",
                    "required": ["items"],
                    "properties": {
                        "items": {"type": "array", "items": {"$ref": "#/components/schemas/ReferenceDataset"}}
                    },
                },
                "UploadedReferenceDataset": {
                    "allOf": [{"$ref": "#/components/schemas/ReferenceDataset"}],
                    "type": "object",
                    "description": "An uploaded reference data set as administrators see it.",
                    "properties": {
                        "origin": {"const": "uploaded"},
                        "version": {"type": "string"},
                        "licence": {"type": "string"},
                        "source": {"type": "string"},
                        "format": {"enum": ["csv", "parquet"]},
                        "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                        "active": {"type": "boolean", "description": "False once retired"},
                        "uploaded_by": {"type": ["string", "null"]},
                        "uploaded_at": {"type": "string", "format": "date-time"},
                        "retired_at": {"type": ["string", "null"], "format": "date-time"},
                    },
                },
                "AuditJobList": {
                    "type": "object",
                    "properties": {"items": {"type": "array", "items": {"$ref": "#/components/schemas/AuditJob"}}},
                },
                "Comment": {"type": "object"},
                "CommentList": {
                    "type": "object",
                    "properties": {"items": {"type": "array", "items": {"$ref": "#/components/schemas/Comment"}}},
                },
                "Decision": {
                    "type": "object",
                    "required": ["id", "filing_id", "outcome", "state", "conditions", "reasons"],
                    "properties": {
                        "id": {"type": "integer"},
                        "filing_id": {"type": "integer"},
                        "outcome": {"enum": ["approved", "approved_with_conditions", "rejected"]},
                        "state": {"enum": ["proposed", "effective", "withdrawn"]},
                        "tier": {"type": ["string", "null"]},
                        "conditions": {"type": "array", "items": {"type": "string"}},
                        "reasons": {"type": "array", "items": {"type": "string"}},
                        "audit_job_ids": {"type": "array", "items": {"type": "integer"}},
                        "audit_report_sha256": {"type": "array", "items": {"type": "string"}},
                        "proposed_by_id": {"type": "integer"},
                        "countersigned_by_id": {"type": ["integer", "null"]},
                        "effective_at": {"type": ["string", "null"], "format": "date-time"},
                        "filing_number": {"type": ["string", "null"]},
                        "withdrawn_by_id": {
                            "type": ["integer", "null"],
                            "description": "Who withdrew the proposal (its proposer) or refused to countersign it",
                        },
                        "withdrawn_by": {"type": ["string", "null"]},
                        "withdrawn_at": {"type": ["string", "null"], "format": "date-time"},
                        "note": {"type": "string", "description": "Reviewers and administrators only."},
                        "log_entry": {
                            "type": ["object", "null"],
                            "description": "The decision's entry in the public decision log, once it took effect",
                            "properties": {
                                "index": {"type": "integer"},
                                "leaf_hash": HEX_HASH,
                                "proof": {"type": "string", "description": "Its inclusion proof (JSON)"},
                                "proof_file": {"type": "string", "description": "Its C2SP tlog-proof file"},
                            },
                        },
                    },
                },
                "DecisionList": {
                    "type": "object",
                    "properties": {"items": {"type": "array", "items": {"$ref": "#/components/schemas/Decision"}}},
                },
                "Notification": {
                    "type": "object",
                    "required": ["id", "kind", "link", "text", "text_zh", "created_at", "read"],
                    "properties": {
                        "id": {"type": "integer"},
                        "kind": {"enum": [kind.value for kind in NotificationKind]},
                        "filing_id": {"type": ["integer", "null"]},
                        "link": {
                            "type": "string",
                            "description": "A path in the registry: the filing, audit or decision",
                        },
                        "title": {"type": "string"},
                        "title_zh": {"type": "string"},
                        "text": {"type": "string", "description": "In English"},
                        "text_zh": {"type": "string", "description": "In Chinese"},
                        "params": {"type": "object", "description": "What the text is made of (names, ids, outcome)"},
                        "created_at": {"type": "string", "format": "date-time"},
                        "read_at": {"type": ["string", "null"], "format": "date-time"},
                        "read": {"type": "boolean"},
                    },
                },
                "NotificationPage": {
                    "type": "object",
                    "required": ["items", "total", "unread", "page", "per_page"],
                    "properties": {
                        "items": {"type": "array", "items": {"$ref": "#/components/schemas/Notification"}},
                        "total": {"type": "integer"},
                        "unread": {"type": "integer", "description": "All your unread notifications"},
                        "page": {"type": "integer"},
                        "per_page": {"type": "integer"},
                    },
                },
                "TransitionList": {
                    "type": "object",
                    "properties": {"items": {"type": "array", "items": {"type": "object"}}},
                },
                **_library_schemas(),
            },
        },
        "x-json-schemas": {name: f"/schemas/{name}.json" for name in schema_files.NAMES},
        "x-open-data": _open_data(),
    }
