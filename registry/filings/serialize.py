"""The JSON shapes of filings, transitions and comments as the API (and the pages' JSON views) give them."""

from __future__ import annotations

from sqlmodel import Session

from registry import authz
from registry.authz import Actor
from registry.errors import Forbidden
from registry.filings import lifecycle
from registry.filings import service as filings
from registry.filings.models import Comment, Filing, FilingTransition


def _time(value):
    return value.isoformat() if value is not None else None


def filing_json(session: Session, filing: Filing, actor: Actor, *, detail: bool = False) -> dict:
    """A filing as ``actor`` may see it. ``detail`` adds the documents, attachments and the risk scoring."""
    try:
        who = authz.lifecycle_actor(actor, filing)
    except Forbidden:  # an administrator reads but takes no lifecycle step
        who = None
    body = {
        "id": filing.id,
        "city_code": filing.city_code,
        "state": filing.state,
        "algorithm": {
            "name_zh": filing.algorithm_name_zh,
            "name_en": filing.algorithm_name_en,
            "version": filing.algorithm_version,
        },
        "scenario": filing.scenario,
        "risk_tier": filing.risk_tier,
        "filing_number": filing.filing_number,
        "supersedes_filing_id": filing.supersedes_id,
        "model_sha256": filing.model_sha256,
        "created_at": _time(filing.created_at),
        "updated_at": _time(filing.updated_at),
        "submitted_at": _time(filing.submitted_at),
        "decided_at": _time(filing.decided_at),
        "next_audit_due": _time(filing.next_audit_due),
        "allowed_actions": [a for a in lifecycle.allowed_actions(filing.state, who) if a in lifecycle.PERSON_ACTIONS]
        if who
        else [],
    }
    if detail:
        body["technical_document"] = filing.technical_document
        body["test_report"] = filing.test_report
        body["risk_assessment"] = filing.risk_assessment
        body["attachments"] = [
            {
                "id": a.id,
                "kind": a.kind,
                "sha256": a.sha256,
                "filename": a.filename,
                "size": a.size,
                "created_at": _time(a.created_at),
            }
            for a in filings.attachments(session=session, filing=filing)
        ]
    return body


def transition_json(t: FilingTransition) -> dict:
    return {
        "action": t.action,
        "from_state": t.from_state,
        "to_state": t.to_state,
        "actor_role": t.actor_role,
        "actor_id": t.actor_id,
        "reason": t.reason,
        "at": _time(t.at),
    }


def comment_json(c: Comment) -> dict:
    return {
        "id": c.id,
        "author_id": c.author_id,
        "author_role": c.author_role,
        "body": c.body,
        "reviewer_only": c.reviewer_only,
        "created_at": _time(c.created_at),
    }
