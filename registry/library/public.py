"""What the public may see of a filing: the one place that draws the line. No Flask here.

Every public page, export, feed and API answer is built from :func:`entry` (or :func:`summary` for lists) and
nothing else, so a test of this module's output covers them all. Public: filings that a decision has been taken
on (approved, approved with conditions, rejected — and what followed: suspended, revoked, expired, superseded).
Never public: drafts and filings in review, comments and reviewer-only notes, the decision's reviewer note and
who signed it (roles only), contacts and vendor contacts (personal data), the model file, reference data rows,
accounts.
"""

from __future__ import annotations

import functools
import json
from datetime import datetime

from sqlalchemy.orm import defer
from sqlmodel import Session, select

from registry.audit_jobs.models import AuditJob, JobState
from registry.cities.models import City
from registry.decision_log.models import LogEntry
from registry.decisions.models import Decision, DecisionState
from registry.filings.lifecycle import State
from registry.filings.models import Filing, FilingTransition
from registry.storage.files import ContentStore

PUBLIC_STATES = frozenset(
    {
        State.APPROVED,
        State.APPROVED_WITH_CONDITIONS,
        State.REJECTED,
        State.SUSPENDED,
        State.REVOKED,
        State.EXPIRED,
        State.SUPERSEDED,
    }
)
PUBLIC_STATE_VALUES = tuple(sorted(s.value for s in PUBLIC_STATES))

# The technical document's parts the public reads (DESIGN.md: what it decides, for whom, how, with what oversight).
_DOCUMENT_FIELDS = ("department", "scenario", "decision_role", "legal_basis", "known_limitations")
_INPUT_FIELDS = ("name", "type", "description", "personal_data", "sensitive_attribute", "likely_proxy_for")


def is_public(filing: Filing | None) -> bool:
    return filing is not None and filing.state in PUBLIC_STATES


def entry_key(filing_number: str | None, filing_id: int) -> str:
    """What names a filing's public entry, /library/<key>: its filing number; a rejected filing, which is never
    issued one, goes by its id (already public: every decision log entry carries it)."""
    return filing_number or str(filing_id)


def find_public(session: Session, key: str) -> Filing | None:
    """The public filing an entry key names (a filing number, or the id of a filing), or None. Its test report is
    left in the database until read (nothing public shows it; the audits compare with it)."""
    unread = [defer(Filing.test_report)]
    if key.isascii() and key.isdigit():
        filing = session.get(Filing, int(key), options=unread) if len(key) < 12 else None
    else:
        filing = session.exec(select(Filing).options(*unread).where(Filing.filing_number == key)).first()
    return filing if is_public(filing) else None


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def document_summary(document: dict) -> dict:
    """The public part of a technical document: never the contacts or the vendor's contact (personal data); the
    impact questionnaire is published as the scored risk assessment instead."""
    document = document or {}
    algorithm = document.get("algorithm") or {}
    model = document.get("model") or {}
    output = model.get("output") or {}
    training = document.get("training_data") or {}
    oversight = document.get("human_oversight") or {}
    population = document.get("affected_population") or {}
    body = {field: document.get(field) for field in _DOCUMENT_FIELDS}
    body |= {
        "purpose": algorithm.get("purpose"),
        "affected_population": {
            "description": population.get("description"),
            "estimated_decisions_per_year": population.get("estimated_decisions_per_year"),
        },
        "model": {
            "type": model.get("type"),
            "description": model.get("description"),
            "inputs": [{k: item.get(k) for k in _INPUT_FIELDS if k in item} for item in model.get("inputs") or []],
            "output": {k: output.get(k) for k in ("description", "favourable_label", "decision_threshold")},
        },
        "training_data": {
            "source": training.get("source"),
            "period": training.get("period"),
            "size": training.get("size"),
            "representativeness": training.get("representativeness"),
        },
        "human_oversight": {
            "description": oversight.get("description"),
            "appeal_process": oversight.get("appeal_process"),
        },
        "vendor": {"name": (document.get("vendor") or {}).get("name")},
    }
    return body


def summary(filing: Filing, city: City | None) -> dict:
    """A filing as a row of the public list."""
    return {
        "filing_number": filing.filing_number,
        "filing_id": filing.id,
        "name_zh": filing.algorithm_name_zh,
        "name_en": filing.algorithm_name_en,
        "version": filing.algorithm_version,
        "city": {
            "code": filing.city_code,
            "name_zh": city.name_zh if city else "",
            "name_en": city.name_en if city else "",
        },
        "department": (filing.technical_document or {}).get("department"),
        "scenario": filing.scenario,
        "risk_tier": filing.risk_tier,
        "state": filing.state,
        "decided_at": _time(filing.decided_at),
        "next_audit_due": _time(filing.next_audit_due),
    }


def _decision(decision: Decision, log_index: int | None) -> dict:
    return {
        "outcome": decision.outcome,
        "conditions": list(decision.conditions or []),
        "reasons": list(decision.reasons or []),
        "tier": decision.tier,
        "effective_at": _time(decision.effective_at),
        "filing_number": decision.filing_number,
        "decided_by": ["reviewer", "reviewer"] if decision.countersigned_by_id else ["reviewer"],
        "audit_report_sha256": list(decision.audit_report_sha256 or []),
        "log_index": log_index,
    }


def _effective_decisions(session: Session, filing: Filing) -> list[Decision]:
    return list(
        session.exec(
            select(Decision)
            .where(Decision.filing_id == filing.id, Decision.state == DecisionState.EFFECTIVE)
            .order_by(Decision.effective_at)
        )
    )


def public_audit_jobs(session: Session, filing: Filing, decisions: list[Decision] | None = None) -> list[AuditJob]:
    """The audits the public reads: those an effective decision rests on (``decisions``: the filing's effective
    decisions, when the caller has them already), and every finished re-audit."""
    cited: set[int] = set()
    for decision in _effective_decisions(session, filing) if decisions is None else decisions:
        cited.update(i for i in decision.audit_job_ids or [] if isinstance(i, int))
    jobs = session.exec(
        select(AuditJob)
        .where(AuditJob.filing_id == filing.id, AuditJob.state == JobState.DONE)
        .order_by(AuditJob.finished_at)
    ).all()
    return [job for job in jobs if job.id in cited or job.reason == "reaudit"]


def audit_report(content: ContentStore, job: AuditJob) -> dict:
    """A finished audit's report: figures only (the engine never writes a row of reference data into it).

    Shared and read-only: a report is stored under its sha256, so the bytes behind a digest never change and the
    parsed report is kept (the last _REPORTS_KEPT) — an entry with a review and six re-audits parsed six copies of an
    80 kB report on every view. Callers must not modify it."""
    return _parsed_report(content, job.report_sha256)


_REPORTS_KEPT = 64


@functools.lru_cache(maxsize=_REPORTS_KEPT)
def _parsed_report(content: ContentStore, sha256: str) -> dict:
    with content.open(sha256) as handle:
        return json.loads(handle.read().decode("utf-8"))


def entry(session: Session, content: ContentStore, filing: Filing) -> dict:
    """Everything the public entry page, the entry's JSON and CSV show. The filing must be public."""
    if not is_public(filing):
        raise ValueError("not a public filing")
    city = session.get(City, filing.city_code)
    body = summary(filing, city)
    body["document"] = document_summary(filing.technical_document)
    body["risk_assessment"] = dict(filing.risk_assessment or {})  # how the tier was scored, question by question
    # One query each: a page made at a reader's first ask is a dozen round trips to PostgreSQL, each of which costs
    # more than the Python around it.
    log_entries = session.exec(
        select(LogEntry.index, LogEntry.kind, LogEntry.leaf_hash, LogEntry.decision_id)
        .where(LogEntry.filing_id == filing.id)
        .order_by(LogEntry.index)
    ).all()
    logged = {decision_id: index for index, _kind, _hash, decision_id in log_entries if decision_id is not None}
    decisions = _effective_decisions(session, filing)
    body["decisions"] = [_decision(d, logged.get(d.id)) for d in decisions]
    body["history"] = [
        {
            "action": t.action,
            "from_state": t.from_state,
            "to_state": t.to_state,
            "at": _time(t.at),
            "role": t.actor_role,
        }
        for t in session.exec(
            select(FilingTransition).where(FilingTransition.filing_id == filing.id).order_by(FilingTransition.id)
        )
        if t.to_state in PUBLIC_STATES  # the public record starts with the decision
    ]
    body["log_entries"] = [
        {"index": index, "kind": kind, "leaf_hash": leaf_hash} for index, kind, leaf_hash, _decision_id in log_entries
    ]
    body["audits"] = [public_audit(content, job) for job in public_audit_jobs(session, filing, decisions)]
    body["versions"] = versions(session, filing)
    return body


def public_audit(content: ContentStore, job: AuditJob) -> dict:
    """A published audit as an entry shows it (one of :func:`public_audit_jobs`)."""
    return {
        "id": job.id,
        "reason": job.reason,
        "dataset": job.dataset,
        "finished_at": _time(job.finished_at),
        "verdict": job.verdict,
        "report_sha256": job.report_sha256,
        "report": audit_report(content, job),
    }


def log_events(session: Session, *, limit: int = 100) -> list[dict]:
    """The newest entries of the public decision log (decisions, suspensions, revocations, expiries, supersessions)
    of public filings, newest first, each with the filing it concerns and the conditions or reasons it records —
    what the Atom feed publishes. Everything here is already public in the log itself (roles only, no person)."""
    rows = session.exec(
        select(
            LogEntry.index,
            LogEntry.kind,
            LogEntry.leaf,
            LogEntry.leaf_hash,
            LogEntry.created_at,
            Filing.id,
            Filing.filing_number,
            Filing.algorithm_name_zh,
            Filing.algorithm_name_en,
            Filing.algorithm_version,
            Filing.city_code,
            City.name_zh,
            City.name_en,
        )
        .join(Filing, Filing.id == LogEntry.filing_id)
        .outerjoin(City, City.code == Filing.city_code)
        .where(Filing.state.in_(PUBLIC_STATE_VALUES))
        .order_by(LogEntry.index.desc())
        .limit(limit)
    ).all()
    events = []
    for index, kind, leaf, leaf_hash, at, filing_id, number, name_zh, name_en, version, city, city_zh, city_en in rows:
        record = json.loads(bytes(leaf).decode("utf-8"))
        events.append(
            {
                "index": index,
                "kind": kind,
                "leaf_hash": leaf_hash,
                "at": _time(at),
                "filing_id": filing_id,
                "filing_number": number,
                "name_zh": name_zh,
                "name_en": name_en,
                "version": version,
                "city": {"code": city, "name_zh": city_zh or "", "name_en": city_en or ""},
                "conditions": list(record.get("conditions") or []),
                "reasons": list(record.get("reasons") or []),
            }
        )
    return events


_VERSION_COLUMNS = (Filing.id, Filing.supersedes_id, Filing.filing_number, Filing.algorithm_version, Filing.state)


def versions(session: Session, filing: Filing) -> list[dict]:
    """The public versions of the algorithm this filing belongs to (the supersedes chain), oldest first. Each step
    reads the five columns it needs, not the filing with its documents."""
    chain: list = []
    seen: set[int] = set()
    current = filing
    while current is not None and current.id not in seen:  # back to the first version
        seen.add(current.id)
        chain.insert(0, current)
        earlier = current.supersedes_id
        current = session.exec(select(*_VERSION_COLUMNS).where(Filing.id == earlier)).first() if earlier else None
    newer = filing.id
    while True:  # forward to the newest
        following = session.exec(select(*_VERSION_COLUMNS).where(Filing.supersedes_id == newer)).first()
        if following is None or following.id in seen:
            break
        seen.add(following.id)
        chain.append(following)
        newer = following.id
    return [
        {"filing_number": f.filing_number, "version": f.algorithm_version, "state": f.state}
        for f in chain
        if f.state in PUBLIC_STATES
    ]
