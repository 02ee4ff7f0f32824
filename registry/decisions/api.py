"""REST API for decisions under /api/v1: propose, countersign, withdraw, read, the PDF letter. Thin: parse, call
the service."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, url_for
from flask_babel import gettext

from registry.access import allow, current_actor
from registry.accounts import service as accounts
from registry.api_support import idempotent, json_body, json_response
from registry.decision_log import service as decision_log
from registry.decisions import letter as letters
from registry.decisions import letter_pdf as pdf
from registry.decisions import service as decisions
from registry.decisions.models import Decision
from registry.errors import Unprocessable
from registry.i18n import is_chinese
from registry.request_db import db

bp = Blueprint("decisions_api", __name__, url_prefix="/api/v1")
STAFF = ("city", "reviewer", "admin")
PROPOSAL_FIELDS = frozenset({"outcome", "conditions", "reasons", "audit_job_ids", "note"})


def _time(value):
    return value.isoformat() if value is not None else None


def decision_json(decision: Decision) -> dict:
    """A decision as the caller may see it: the reviewers' note only for reviewers and administrators."""
    actor = current_actor()
    body = {
        "id": decision.id,
        "filing_id": decision.filing_id,
        "outcome": decision.outcome,
        "state": decision.state,
        "tier": decision.tier or None,
        "conditions": list(decision.conditions or []),
        "reasons": list(decision.reasons or []),
        "audit_job_ids": list(decision.audit_job_ids or []),
        "audit_report_sha256": list(decision.audit_report_sha256 or []),
        "proposed_by_id": decision.proposed_by_id,
        "proposed_at": _time(decision.proposed_at),
        "countersigned_by_id": decision.countersigned_by_id,
        "countersigned_at": _time(decision.countersigned_at),
        "effective_at": _time(decision.effective_at),
        "filing_number": decision.filing_number,
        "withdrawn_by_id": decision.withdrawn_by_id,
        "withdrawn_at": _time(decision.withdrawn_at),
    }
    names = accounts.display_names(
        session=db(), ids=[decision.proposed_by_id, decision.countersigned_by_id, decision.withdrawn_by_id]
    )
    body["proposed_by"] = names.get(decision.proposed_by_id)
    body["countersigned_by"] = names.get(decision.countersigned_by_id)
    body["withdrawn_by"] = names.get(decision.withdrawn_by_id)
    if decisions.may_see_note(actor):
        body["note"] = decision.note
    body["log_entry"] = _log_entry(decision)
    return body


def _log_entry(decision: Decision) -> dict | None:
    """Where the decision is in the public log, and how to prove it (None until it takes effect)."""
    entry = decision_log.entry_or_none(db(), decision.id)
    if entry is None:
        return None
    return {
        "index": entry.index,
        "leaf_hash": entry.leaf_hash,
        "proof": url_for("decision_log_api.inclusion", index=entry.index),
        "proof_file": url_for("decision_log_api.proof_file", index=entry.index),
    }


@bp.post("/filings/<int:filing_id>/decisions")
@allow("reviewer")
def propose(filing_id: int):
    """Propose a decision (Idempotency-Key supported): effective at once on tier I/II, else awaits a countersignature."""
    body = json_body(allowed=PROPOSAL_FIELDS)
    if not isinstance(body.get("outcome"), str):
        raise Unprocessable("The outcome is required.", code="missing_field", pointer="/outcome")
    note = body.get("note", "")
    if not isinstance(note, str):
        raise Unprocessable("The note is a text.", code="bad_field", pointer="/note")

    def work():
        decision = decisions.propose(
            session=db(),
            actor=current_actor(),
            filing_id=filing_id,
            outcome=body["outcome"],
            conditions=body.get("conditions", []),
            reasons=body.get("reasons", []),
            audit_job_ids=body.get("audit_job_ids", []),
            note=note,
            province=current_app.config["PROVINCE_ABBREVIATION"],
        )
        return 201, decision_json(decision)

    return idempotent(work, location=lambda b: url_for("decisions_api.get_decision", decision_id=b["id"]))


@bp.get("/filings/<int:filing_id>/decisions")
@allow(*STAFF)
def list_decisions(filing_id: int):
    items = decisions.list_for_filing(session=db(), actor=current_actor(), filing_id=filing_id)
    return json_response({"items": [decision_json(d) for d in items]})


@bp.get("/decisions/<int:decision_id>")
@allow(*STAFF)
def get_decision(decision_id: int):
    return json_response(decision_json(decisions.get(session=db(), actor=current_actor(), decision_id=decision_id)))


@bp.post("/decisions/<int:decision_id>/countersign")
@allow("reviewer")
def countersign(decision_id: int):
    """A second reviewer countersigns: the decision takes effect (a filing number is issued on approval)."""

    def work():
        decision = decisions.countersign(
            session=db(),
            actor=current_actor(),
            decision_id=decision_id,
            province=current_app.config["PROVINCE_ABBREVIATION"],
        )
        return 200, decision_json(decision)

    return idempotent(work)


@bp.post("/decisions/<int:decision_id>/withdraw")
@allow("reviewer")
def withdraw(decision_id: int):
    """The proposer withdraws the proposal, or another reviewer refuses to countersign it (a reason is required)."""
    body = json_body(allowed=frozenset({"reason"}))
    reason = body.get("reason", "")
    if not isinstance(reason, str):
        raise Unprocessable("The reason is a text.", code="bad_field", pointer="/reason")

    def work():
        decision = decisions.withdraw(session=db(), actor=current_actor(), decision_id=decision_id, reason=reason)
        return 200, decision_json(decision)

    return idempotent(work)


@bp.get("/decisions/<int:decision_id>/letter.pdf")
@allow(*STAFF)
def letter_pdf(decision_id: int):
    """The decision letter as PDF (effective decisions only; 409 otherwise), in Chinese or with ?lang=en English."""
    source = letters.load(session=db(), actor=current_actor(), decision_id=decision_id)
    letter = letters.compose(source, gettext=gettext, chinese=is_chinese())
    return Response(pdf.render(letter), mimetype=pdf.MEDIA_TYPE, headers=pdf.headers(decision_id))
