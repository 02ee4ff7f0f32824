"""REST API for filings under /api/v1: thin handlers that parse, call the service and answer JSON."""

from __future__ import annotations

import hashlib
import json

from flask import Blueprint, current_app, request, url_for
from werkzeug.exceptions import RequestEntityTooLarge

from registry.access import allow, current_actor
from registry.api_support import idempotent, int_arg, json_body, json_response
from registry.errors import BadRequest, PayloadTooLarge, Unprocessable, UnsupportedMediaType
from registry.filings import lifecycle
from registry.filings import service as filings
from registry.filings.serialize import comment_json, filing_json, transition_json
from registry.request_db import db

bp = Blueprint("filings_api", __name__, url_prefix="/api/v1")
STAFF = ("city", "reviewer", "admin")


def _filing_answer(filing, status: int = 200) -> tuple[int, dict]:
    return status, filing_json(db(), filing, current_actor(), detail=True)


@bp.get("/filings")
@allow(*STAFF)
def list_filings():
    """The filings the caller may read (a city team its own city's, reviewers every submitted one), filtered by
    state, city, scenario and tier, with when each entered its current state; an unknown filter value is a 422."""
    page = filings.list_filings(
        session=db(),
        actor=current_actor(),
        **{name: request.args.get(name) for name in filings.FILTERS},
        sort=request.args.get("sort"),
        page=int_arg("page", 1),
        per_page=int_arg("per_page", current_app.config["API_PAGE_SIZE"]),
    )
    return json_response(
        {
            "items": [
                {**filing_json(db(), f, current_actor()), "in_state_since": page.in_state_since[f.id].isoformat()}
                for f in page.items
            ],
            "total": page.total,
            "page": page.page,
            "per_page": page.per_page,
            "sort": page.sort,
        }
    )


@bp.post("/filings")
@allow("city")
def create_filing():
    """File a new draft: the filing envelope (technical document, optional test report, optional supersedes)."""
    body = json_body(allowed=frozenset({"technical_document", "test_report", "supersedes_filing_id"}))
    if "technical_document" not in body:
        raise Unprocessable("The technical document is required.", code="missing_field", pointer="/technical_document")
    supersedes = body.get("supersedes_filing_id")
    if supersedes is not None and (not isinstance(supersedes, int) or isinstance(supersedes, bool)):
        raise Unprocessable(
            "supersedes_filing_id must be an integer or null.", code="bad_field", pointer="/supersedes_filing_id"
        )

    def work():
        filing = filings.create_draft(
            session=db(),
            actor=current_actor(),
            technical_document=body["technical_document"],
            test_report=body.get("test_report"),
            supersedes_filing_id=supersedes,
        )
        return _filing_answer(filing, 201)

    return idempotent(work, location=lambda b: url_for("filings_api.get_filing", filing_id=b["id"]))


@bp.get("/filings/<int:filing_id>")
@allow(*STAFF)
def get_filing(filing_id: int):
    filing = filings.get_filing(session=db(), actor=current_actor(), filing_id=filing_id)
    return json_response(_filing_answer(filing)[1])


@bp.patch("/filings/<int:filing_id>")
@allow("city")
def update_filing(filing_id: int):
    """Replace the technical document and/or the test report of a draft (or of a filing sent back for changes)."""
    body = json_body(allowed=frozenset({"technical_document", "test_report"}))
    if not body:
        raise Unprocessable("Send technical_document, test_report or both.", code="empty_update", pointer="")
    for name in ("technical_document", "test_report"):
        if name in body and not isinstance(body[name], dict):
            raise Unprocessable(f"{name} must be a JSON object.", code="bad_field", pointer=f"/{name}")
    filing = filings.update_documents(
        session=db(),
        actor=current_actor(),
        filing_id=filing_id,
        technical_document=body.get("technical_document"),
        test_report=body.get("test_report"),
    )
    db().commit()
    return json_response(_filing_answer(filing)[1])


@bp.post("/filings/<int:filing_id>/attachments")
@allow("city")
def upload_attachment(filing_id: int):
    """Attach the model (kind=model, ONNX) or a supporting document (kind=document, PDF) as multipart form data."""
    if request.mimetype != "multipart/form-data":
        raise UnsupportedMediaType(
            "Upload as multipart/form-data with fields kind and file.", code="multipart_required"
        )
    try:
        upload = request.files.get("file")
    except RequestEntityTooLarge:  # the body is over any upload's limit: refused before it is read
        raise PayloadTooLarge(
            "The upload is larger than this registry accepts.", code="file_too_large", pointer="/file"
        ) from None
    if upload is None:
        raise Unprocessable("The form has no file field.", code="missing_file", pointer="/file")
    kind = request.form.get("kind", "model")
    limit = current_app.config["MAX_MODEL_BYTES"] if kind == "model" else current_app.config["MAX_DOCUMENT_BYTES"] * 10

    def work():
        attachment = filings.attach_file(
            session=db(),
            content=current_app.extensions["registry"].content,
            actor=current_actor(),
            filing_id=filing_id,
            kind=kind,
            stream=upload.stream,
            filename=upload.filename or "upload",
            max_bytes=int(limit),
        )
        return 201, {
            "id": attachment.id,
            "kind": attachment.kind,
            "sha256": attachment.sha256,
            "filename": attachment.filename,
            "size": attachment.size,
        }

    def identity() -> bytes:
        # A retry sends the same form with a new multipart boundary: the same kind, name and bytes are the same upload.
        digest = hashlib.sha256()
        while chunk := upload.stream.read(1024 * 1024):
            digest.update(chunk)
        upload.stream.seek(0)
        return json.dumps([kind, upload.filename or "", digest.hexdigest()]).encode()

    return idempotent(work, request_identity=identity)


def _transition_body() -> str:
    if not request.get_data(cache=True):
        return ""
    body = json_body(allowed=frozenset({"reason"}))
    reason = body.get("reason", "")
    if not isinstance(reason, str) or len(reason) > 4000:
        raise Unprocessable("reason is a text of at most 4,000 characters.", code="bad_field", pointer="/reason")
    return reason


def _take(filing_id: int, action: str):
    reason = _transition_body()

    def work():
        filing = filings.transition(
            session=db(),
            actor=current_actor(),
            filing_id=filing_id,
            action=action,
            reason=reason,
            province=current_app.config["PROVINCE_ABBREVIATION"],
        )
        return _filing_answer(filing)

    return idempotent(work)


@bp.post("/filings/<int:filing_id>/submit")
@allow("city")
def submit_filing(filing_id: int):
    """Submit a complete draft for provincial review (Idempotency-Key supported)."""
    return _take(filing_id, lifecycle.Action.SUBMIT)


@bp.post("/filings/<int:filing_id>/actions/<action>")
@allow("city", "reviewer")
def take_action(filing_id: int, action: str):
    """Take a lifecycle step: submit, resubmit, withdraw (city team); start_review, request_changes (reviewer)."""
    if action not in lifecycle.PERSON_ACTIONS:
        raise BadRequest(
            f"Unknown action {action!r}; use one of {', '.join(sorted(lifecycle.PERSON_ACTIONS))}.",
            code="unknown_action",
        )
    return _take(filing_id, action)


@bp.get("/filings/<int:filing_id>/history")
@allow(*STAFF)
def filing_history(filing_id: int):
    filing = filings.get_filing(session=db(), actor=current_actor(), filing_id=filing_id)
    return json_response({"items": [transition_json(t) for t in filings.history(session=db(), filing=filing)]})


@bp.get("/filings/<int:filing_id>/comments")
@allow(*STAFF)
def list_comments(filing_id: int):
    filing = filings.get_filing(session=db(), actor=current_actor(), filing_id=filing_id)
    thread = filings.comments(session=db(), actor=current_actor(), filing=filing)
    return json_response({"items": [comment_json(c) for c in thread]})


@bp.post("/filings/<int:filing_id>/comments")
@allow("city", "reviewer")
def add_comment(filing_id: int):
    body = json_body(allowed=frozenset({"body", "reviewer_only"}))
    text = body.get("body")
    if not isinstance(text, str):
        raise Unprocessable("body is required and is a text.", code="bad_field", pointer="/body")
    reviewer_only = body.get("reviewer_only", False)
    if not isinstance(reviewer_only, bool):
        raise Unprocessable("reviewer_only is true or false.", code="bad_field", pointer="/reviewer_only")

    def work():
        comment = filings.add_comment(
            session=db(), actor=current_actor(), filing_id=filing_id, body=text, reviewer_only=reviewer_only
        )
        return 201, comment_json(comment)

    return idempotent(work)
