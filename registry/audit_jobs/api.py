"""REST API for audit jobs under /api/v1: thin handlers that parse, call the service and answer JSON."""

from __future__ import annotations

from flask import Blueprint, current_app, url_for

from audits import policy as policies
from registry.access import allow, current_actor
from registry.api_support import idempotent, json_body, json_response
from registry.audit_jobs import attention
from registry.audit_jobs import service as audits
from registry.audit_jobs.models import AuditJob
from registry.audit_jobs.worker import queue_for
from registry.db import utcnow
from registry.filings.serialize import filing_json
from registry.request_db import db

bp = Blueprint("audit_jobs_api", __name__, url_prefix="/api/v1")
STAFF = ("city", "reviewer", "admin")


def job_json(job: AuditJob) -> dict:
    """An audit job as the API shows it (the same for everyone who may read its filing)."""
    return {
        "id": job.id,
        "filing_id": job.filing_id,
        "state": job.state,
        "progress": job.progress,
        "dataset": job.dataset,
        "sensitive_attributes": list(job.sensitive_attributes),
        "tier": job.tier,
        "seed": job.seed,
        "replicates": job.replicates,
        "reason": job.reason,
        "attempts": job.attempts,
        "max_attempts": job.max_attempts,
        "error": job.error,
        "verdict": job.verdict,
        "report_sha256": job.report_sha256,
        "created_at": job.created_at.isoformat(),
        "started_at": job.started_at.isoformat() if job.started_at else None,
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
        "links": {
            "self": url_for("audit_jobs_api.get_audit", job_id=job.id),
            "report": url_for("audit_jobs_api.get_report", job_id=job.id),
            "page": url_for("audit_jobs.detail", job_id=job.id),
        },
    }


@bp.get("/reference-datasets")
@allow("reviewer", "admin")
def reference_datasets():
    """The reference data sets (shipped and active uploads): name, description, rows and sensitive attributes
    (never a row of data)."""
    return json_response({"items": audits.reference_datasets(db())})


@bp.post("/filings/<int:filing_id>/audits")
@allow("reviewer")
def start_audit(filing_id: int):
    """Queue an audit of the filing's model: {dataset, sensitive_attributes?, seed?, replicates?} → 202."""
    body = json_body(allowed=frozenset({"dataset", "sensitive_attributes", "seed", "replicates"}))
    queue = queue_for(current_app)

    def work():
        job = audits.start_audit(
            session=db(),
            actor=current_actor(),
            filing_id=filing_id,
            dataset=body.get("dataset"),
            sensitive_attributes=body.get("sensitive_attributes"),
            seed=body.get("seed", 0),
            replicates=body.get("replicates"),
        )
        return 202, job_json(job)

    response = idempotent(work)
    if response.status_code == 202:
        answer = response.get_json()
        response.headers["Location"] = answer["links"]["self"]
        queue.enqueue(answer["id"])
    return response


@bp.get("/filings/<int:filing_id>/audits")
@allow(*STAFF)
def list_audits(filing_id: int):
    """The filing's audits, newest first (a city team sees its own city's)."""
    jobs = audits.list_jobs(session=db(), actor=current_actor(), filing_id=filing_id)
    return json_response({"items": [job_json(j) for j in jobs]})


@bp.get("/audits/<int:job_id>")
@allow(*STAFF)
def get_audit(job_id: int):
    """One audit: state, progress, error, verdict."""
    return json_response(job_json(audits.get_job(session=db(), actor=current_actor(), job_id=job_id)))


@bp.get("/audits/<int:job_id>/report")
@allow(*STAFF)
def get_report(job_id: int):
    """The audit report (schemas/audit-report.json); 409 while the audit is not done."""
    content = current_app.extensions["registry"].content
    return json_response(audits.report(session=db(), content=content, actor=current_actor(), job_id=job_id))


@bp.get("/reaudits/attention")
@allow("reviewer", "admin")
def reaudit_attention():
    """What the re-audit schedule puts in front of reviewers (registry.audit_jobs.attention): filings whose latest
    re-audit failed or did not meet the policy, then overdue ones (with the day each expires), then those due soon."""
    session, actor = db(), current_actor()
    items = [
        {
            "kind": item.kind,
            "filing": filing_json(session, item.filing, actor),
            "reaudit": job_json(item.reaudit) if item.reaudit is not None else None,
            "next_audit_due": item.due.isoformat() if item.due else None,
            "expires_at": item.expires_at.isoformat() if item.expires_at else None,
        }
        for item in attention.attention(session=session, now=utcnow(), policy=policies.load())
    ]
    return json_response({"items": items})
