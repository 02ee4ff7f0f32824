"""What in the periodic re-audit schedule needs a reviewer: re-audits that failed, filings whose re-audit is overdue
(each expires at the end of its tier's grace period), and filings whose re-audit falls due soon.

Read-only, no Flask: the reviewers' page (/reaudits) and the API (GET /api/v1/reaudits/attention) both list
:func:`attention`. The rules (intervals, grace periods, what counts as failed) are ``registry.audit_jobs.schedule``'s.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session, select

from audits import policy as policies
from registry.audit_jobs import schedule
from registry.audit_jobs.models import AuditJob
from registry.filings.models import Filing

FAILED = "failed_reaudit"  # the latest re-audit failed, or did not meet the policy
OVERDUE = "overdue"  # the re-audit date has passed: the filing expires when the grace period ends
DUE_SOON = "due_soon"  # the re-audit falls due within the horizon
KINDS = (FAILED, OVERDUE, DUE_SOON)
DUE_SOON_DAYS = 30


@dataclass(frozen=True)
class Item:
    kind: str
    filing: Filing
    due: datetime | None  # the filing's next_audit_due
    expires_at: datetime | None  # due + the tier's grace period: the filing expires then unless re-audited
    reaudit: AuditJob | None  # the failed re-audit (FAILED), else the latest re-audit if there is one


@dataclass(frozen=True)
class NextAudit:
    due: datetime
    expires_at: datetime
    overdue: bool


def next_audit(*, filing: Filing, now: datetime, policy: policies.Policy) -> NextAudit | None:
    """The filing's next re-audit date, when the filing would expire without it, and whether it is overdue."""
    if filing.next_audit_due is None:
        return None
    return NextAudit(
        due=filing.next_audit_due, expires_at=_expires(filing, policy), overdue=filing.next_audit_due < now
    )


def attention(
    *, session: Session, now: datetime, policy: policies.Policy, horizon: timedelta = timedelta(days=DUE_SOON_DAYS)
) -> list[Item]:
    """One item per filing that needs a reviewer, most urgent kind first: FAILED (oldest failure first), OVERDUE
    (soonest expiry first), DUE_SOON (soonest due first). Two queries, whatever the number of filings."""
    items = [
        Item(FAILED, filing, filing.next_audit_due, _expires(filing, policy), job)
        for filing, job in schedule.needs_attention(session=session)
    ]
    failed = {item.filing.id for item in items}
    latest = schedule.latest_reaudits()
    rows = session.exec(
        select(Filing, AuditJob)
        .outerjoin(latest, latest.c.filing_id == Filing.id)
        .outerjoin(AuditJob, AuditJob.id == latest.c.job_id)
        .where(
            Filing.state.in_([s.value for s in schedule.EXPIRABLE]),
            Filing.next_audit_due.is_not(None),
            Filing.next_audit_due <= now + horizon,
        )
        .order_by(Filing.next_audit_due, Filing.id)
    ).all()
    overdue, due_soon = [], []
    for filing, job in rows:
        if filing.id in failed:
            continue
        item = Item(
            OVERDUE if filing.next_audit_due < now else DUE_SOON,
            filing,
            filing.next_audit_due,
            _expires(filing, policy),
            job,
        )
        (overdue if item.kind == OVERDUE else due_soon).append(item)
    overdue.sort(key=lambda i: (i.expires_at, i.filing.id))
    return items + overdue + due_soon


def _expires(filing: Filing, policy: policies.Policy) -> datetime | None:
    if filing.next_audit_due is None:
        return None
    return filing.next_audit_due + schedule.grace_period(tier=filing.risk_tier, policy=policy)
