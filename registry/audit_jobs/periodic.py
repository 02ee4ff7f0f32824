"""The periodic step behind ``registry reaudit due`` and the Celery beat task: expire the overdue, queue the due.

One transaction; returns what it did, so the caller can print it and hand the new jobs to the queue. No Flask here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.engine import Engine

from audits import policy as policies
from registry.audit_jobs import schedule
from registry.db import transaction


@dataclass
class DueRun:
    now: datetime
    lines: list[str] = field(default_factory=list)  # one per action, for people and logs
    job_ids: list[int] = field(default_factory=list)  # re-audits queued
    expired: int = 0

    @property
    def summary(self) -> str:
        return f"Queued {len(self.job_ids)} re-audit(s), expired {self.expired} filing(s) at {self.now.isoformat()}."


def reaudit_due(engine: Engine, *, now: datetime, policy: policies.Policy | None = None) -> DueRun:
    """Expire filings whose re-audit is overdue beyond the grace period, then queue every re-audit that is due."""
    policy = policy or policies.load()
    run = DueRun(now=now)
    with transaction(engine) as session:
        expired = schedule.expire_overdue(session=session, now=now, policy=policy)
        run.lines += [
            f"expired filing {e.filing.id} ({e.filing.filing_number}): re-audit due {e.due.isoformat()}"
            for e in expired
        ]
        jobs = schedule.queue_due(session=session, now=now, policy=policy)
        session.flush()
        run.lines += [f"queued re-audit {j.id} of filing {j.filing_id} on {j.dataset}" for j in jobs]
        run.job_ids = [j.id for j in jobs]
        run.expired = len(expired)
    return run
