"""Periodic re-audit: when a decided filing's next audit falls due, queueing the due ones, expiring the overdue.

Each approved filing gets its next audit date from its risk tier (``reaudit_interval_months`` of the audit
policy: e.g. IV every 6 months, III every 12, II every 24, I on change only). ``registry reaudit due`` (cron, or
Celery beat at scale) calls :func:`expire_overdue` and :func:`queue_due`; a re-audit that meets the policy moves
the date forward from its completion, one that does not (or fails) puts the filing in front of the reviewers
(:func:`needs_attention`), and a filing whose re-audit is overdue by more than the tier's ``grace_period_days``
expires. No Flask here; every function runs in the caller's transaction.
"""

from __future__ import annotations

import calendar
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session, select

from audits import policy as policies
from registry import authz
from registry.audit_jobs.models import AuditJob, JobState
from registry.db import utcnow
from registry.filings import lifecycle
from registry.filings import service as filings
from registry.filings.lifecycle import Action, State
from registry.filings.models import Comment, Filing
from registry.notifications import service as notifications

log = logging.getLogger(__name__)

REAUDIT = "reaudit"  # AuditJob.reason of a scheduled re-audit
DEFAULT_TIER = "III"  # a filing whose tier is not assessed is treated as high risk (as audit_jobs.service does)
OPEN = (JobState.QUEUED, JobState.RUNNING)
# Filings that may expire when their re-audit is overdue (the lifecycle's sources of ``expire``).
EXPIRABLE = lifecycle.DECIDED | {State.SUSPENDED}


# --- pure ------------------------------------------------------------------------------------------------------------


def _tier(tier: str | None) -> str:
    return tier if tier in policies.TIERS else DEFAULT_TIER


def add_months(when: datetime, months: int) -> datetime:
    """``when`` plus ``months`` calendar months; a day the target month lacks becomes its last (31 Aug + 6 → 28 Feb)."""
    index = when.month - 1 + months
    year, month = when.year + index // 12, index % 12 + 1
    return when.replace(year=year, month=month, day=min(when.day, calendar.monthrange(year, month)[1]))


def next_due(*, decided_at: datetime, tier: str | None, policy: policies.Policy) -> datetime | None:
    """When the next re-audit of a filing of ``tier`` decided (or last re-audited) at ``decided_at`` falls due.

    None when the tier is re-audited on change only (no ``reaudit_interval_months``, tier I in the shipped policy).
    A filing with no tier is treated as tier III.
    """
    months = policy.tier(_tier(tier)).get("reaudit_interval_months")
    if not months:
        return None
    return add_months(decided_at, int(months))


def grace_period(*, tier: str | None, policy: policies.Policy) -> timedelta:
    """How long a re-audit may be overdue before the filing expires (the tier's ``grace_period_days``)."""
    return timedelta(days=int(policy.tier(_tier(tier)).get("grace_period_days") or 0))


# --- hooks -----------------------------------------------------------------------------------------------------------


def on_decision(*, filing: Filing, policy: policies.Policy | None = None) -> None:
    """A decision took effect: an approved filing's first re-audit is due one interval after the decision."""
    if filing.state in lifecycle.DECIDED and filing.decided_at is not None:
        policy = policy or policies.load()
        filing.next_audit_due = next_due(decided_at=filing.decided_at, tier=filing.risk_tier, policy=policy)
    else:
        filing.next_audit_due = None


def on_job_finished(*, session: Session, job_id: int, now: datetime | None = None) -> None:
    """A job ended (done or failed). For a re-audit of a decided filing: meeting the policy moves the next audit
    date forward from ``now``; not meeting it, or failing, leaves the filing overdue and in front of the reviewers
    (a reviewer-only note on its thread when the job has a requester to sign it; :func:`needs_attention` always).
    """
    notifications.audit_finished(session=session, job_id=job_id)
    job = session.get(AuditJob, job_id)
    if job is None or job.reason != REAUDIT:
        return
    filing = session.get(Filing, job.filing_id)
    if filing is None or filing.state not in lifecycle.DECIDED:
        return
    now = now or job.finished_at or utcnow()
    if job.state == JobState.DONE and job.verdict == policies.MEETS:
        due = next_due(decided_at=now, tier=filing.risk_tier, policy=policies.load())
        # A plain UPDATE: the schedule is the registry's own field and must not collide with a person's edit of
        # the filing (its optimistic-locking revision stays as it is).
        session.execute(
            sa.update(Filing.__table__).where(Filing.__table__.c.id == filing.id).values(next_audit_due=due)
        )
        session.expire(filing)
        return
    what = "did not meet the audit policy" if job.state == JobState.DONE else f"failed: {job.error or 'no detail'}"
    log.warning("re-audit %s of filing %s %s", job.id, filing.id, what)
    if job.requested_by_id is not None:  # Comment.author_id cannot be null; a scheduled job has no requester
        session.add(
            Comment(
                filing_id=filing.id,
                author_id=job.requested_by_id,
                author_role=lifecycle.SYSTEM,
                body=f"Re-audit {job.id} {what}. The filing needs a reviewer's attention."[:10000],
                reviewer_only=True,
            )
        )


# --- the periodic run ------------------------------------------------------------------------------------------------


def _latest_reaudit(session: Session, filing_id: int) -> AuditJob | None:
    return session.exec(
        select(AuditJob)
        .where(AuditJob.filing_id == filing_id, AuditJob.reason == REAUDIT)
        .order_by(AuditJob.id.desc())
        .limit(1)
    ).first()


def _failed(job: AuditJob | None) -> bool:
    return job is not None and (
        job.state == JobState.FAILED or (job.state == JobState.DONE and job.verdict == policies.DOES_NOT_MEET)
    )


def queue_due(*, session: Session, now: datetime, policy: policies.Policy) -> list[AuditJob]:
    """Queue one re-audit for each decided filing whose next audit is due at ``now``; returns the new jobs.

    Idempotent: a filing with a re-audit already queued or running gets none, and neither does one whose latest
    re-audit failed or did not meet the policy (it waits for a reviewer). The re-audit runs on the data set and
    sensitive attributes of the filing's most recent done audit; a filing that never had one is skipped (logged).
    """
    due = session.exec(
        select(Filing)
        .where(
            Filing.state.in_([s.value for s in lifecycle.DECIDED]),
            Filing.next_audit_due.is_not(None),
            Filing.next_audit_due <= now,
        )
        .order_by(Filing.next_audit_due, Filing.id)
    ).all()
    queued = []
    for filing in due:
        latest = _latest_reaudit(session, filing.id)
        if latest is not None and (latest.state in OPEN or _failed(latest)):
            continue
        previous = session.exec(
            select(AuditJob)
            .where(AuditJob.filing_id == filing.id, AuditJob.state == JobState.DONE)
            .order_by(AuditJob.finished_at.desc(), AuditJob.id.desc())
            .limit(1)
        ).first()
        if previous is None or filing.model_sha256 is None:
            log.warning("filing %s is due for re-audit but has no done audit to repeat; skipped", filing.id)
            continue
        job = AuditJob(
            filing_id=filing.id,
            state=JobState.QUEUED,
            dataset=previous.dataset,
            sensitive_attributes=list(previous.sensitive_attributes),
            tier=_tier(filing.risk_tier),
            model_sha256=filing.model_sha256,
            seed=previous.seed,
            replicates=policy.replicates,
            requested_by_id=None,
            reason=REAUDIT,
        )
        session.add(job)
        queued.append(job)
    session.flush()
    notifications.reaudits_queued(session=session, jobs=queued)
    return queued


@dataclass(frozen=True)
class Expired:
    filing: Filing
    due: datetime


def expire_overdue(*, session: Session, now: datetime, policy: policies.Policy) -> list[Expired]:
    """Expire each decided (or suspended) filing whose re-audit is overdue by more than its tier's grace period,
    through the lifecycle's ``expire`` step taken by the registry itself; returns them with their due dates."""
    candidates = session.exec(
        select(Filing)
        .where(
            Filing.state.in_([s.value for s in EXPIRABLE]),
            Filing.next_audit_due.is_not(None),
            Filing.next_audit_due < now,
        )
        .order_by(Filing.next_audit_due, Filing.id)
    ).all()
    expired = []
    for filing in candidates:
        due = filing.next_audit_due
        if now <= due + grace_period(tier=filing.risk_tier, policy=policy):
            continue
        filings.apply_transition(
            session=session,
            actor=authz.SYSTEM_ACTOR,
            filing=filing,
            action=Action.EXPIRE,
            reason=f"re-audit due {due.date().isoformat()} is overdue beyond the grace period "
            f"of {grace_period(tier=filing.risk_tier, policy=policy).days} days",
        )
        filing.next_audit_due = None
        session.add(filing)
        expired.append(Expired(filing=filing, due=due))
    session.flush()
    notifications.filings_expired(session=session, expired=[(e.filing, e.due) for e in expired])
    return expired


def latest_reaudits():
    """A subquery: each filing's newest re-audit job (``filing_id``, ``job_id``)."""
    return (
        select(AuditJob.filing_id, sa.func.max(AuditJob.id).label("job_id"))
        .where(AuditJob.reason == REAUDIT)
        .group_by(AuditJob.filing_id)
        .subquery()
    )


def needs_attention(*, session: Session) -> list[tuple[Filing, AuditJob]]:
    """Decided filings whose latest re-audit failed or did not meet the policy, with that re-audit, oldest first."""
    latest = latest_reaudits()
    rows = session.exec(
        select(Filing, AuditJob)
        .join(latest, latest.c.filing_id == Filing.id)
        .join(AuditJob, AuditJob.id == latest.c.job_id)
        .where(
            Filing.state.in_([s.value for s in lifecycle.DECIDED]),
            sa.or_(
                AuditJob.state == JobState.FAILED,
                sa.and_(AuditJob.state == JobState.DONE, AuditJob.verdict == policies.DOES_NOT_MEET),
            ),
        )
        .order_by(AuditJob.finished_at, AuditJob.id)
    ).all()
    return [(filing, job) for filing, job in rows]
