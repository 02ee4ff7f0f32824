"""Use cases for notifications: who is told of what, and each account's inbox. No Flask; the caller commits.

The domain services call one function here for each event, inside their own transaction, so an action that is
rolled back notifies no one. Recipients are active accounts only, never the one who acted:

- a comment: by a city team → every reviewer; by a reviewer → the filing's city accounts; a reviewer-only note →
  the other reviewers, never a city account;
- a decision proposed that needs a countersignature → the other reviewers; a decision taking effect → the
  filing's city accounts and the proposer; a proposal withdrawn (or a countersignature refused) → the other
  reviewers (the proposer among them);
- an audit finished → the reviewer who started it (all reviewers for a scheduled one); a periodic re-audit that
  failed or did not meet the policy, one queued because it is due, and an expiry → reviewers and the filing's
  city accounts;
- a concern raised by the public about a library entry → every reviewer (never the sender's contact).

When the database's engine has mail settings (registry.notifications.mailer), each notification to an account
with an e-mail address also gets an outbox row, in the same transaction; it is sent after the commit.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session, func, select

from audits import policy as policies
from registry.accounts.models import Role, User
from registry.audit_jobs.models import AuditJob, JobState
from registry.authz import Actor
from registry.db import utcnow
from registry.decisions.models import Decision, DecisionState
from registry.errors import NotFound, Unprocessable
from registry.filings.models import Comment, Filing
from registry.notifications import mailer
from registry.notifications.models import Notification, OutboxEmail
from registry.notifications.texts import Kind

REAUDIT = "reaudit"  # AuditJob.reason of a periodic re-audit (registry.audit_jobs.schedule.REAUDIT)
EXCERPT = 200  # characters of a comment or reason quoted in the notification
MAX_PER_PAGE = 200


@dataclass(frozen=True)
class Page:
    items: list[Notification]
    total: int
    unread: int
    page: int
    per_page: int


# --- recipients ------------------------------------------------------------------------------------------------------


def _active(session: Session, *conditions) -> list[User]:
    return list(session.exec(select(User).where(User.active.is_(True), *conditions).order_by(User.id)))


def _reviewers(session: Session) -> list[User]:
    return _active(session, User.role == Role.REVIEWER)


def _city_accounts(session: Session, city_code: str) -> list[User]:
    return _active(session, User.role == Role.CITY, User.city_code == city_code)


def _accounts(session: Session, ids: Iterable[int | None]) -> list[User]:
    wanted = {i for i in ids if i is not None}
    return _active(session, User.id.in_(wanted)) if wanted else []


def _name(session: Session, user_id: int | None) -> str:
    user = session.get(User, user_id) if user_id is not None else None
    return user.display_name if user is not None else "—"


def _excerpt(text: str | None) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= EXCERPT else text[: EXCERPT - 1] + "…"


def _filing_params(filing: Filing) -> dict:
    return {
        "filing_id": filing.id,
        "name_zh": filing.algorithm_name_zh,
        "name_en": filing.algorithm_name_en,
        "number": filing.filing_number,
    }


def _notify(
    session: Session,
    *,
    recipients: Iterable[User],
    actor: Actor | None,
    kind: Kind,
    filing: Filing | None,
    link: str,
    params: dict,
) -> list[Notification]:
    """One inbox row per recipient (each once, never the actor), and an outbox row per e-mail when mail is on."""
    params = {**(_filing_params(filing) if filing is not None else {}), **params}
    chosen: dict[int, User] = {}
    for user in recipients:
        if user.active and user.id not in chosen and (actor is None or user.id != actor.user_id):
            chosen[user.id] = user
    rows = [
        Notification(
            user_id=user.id, kind=kind.value, filing_id=filing.id if filing else None, link=link, params=params
        )
        for user in chosen.values()
    ]
    if not rows:
        return rows
    session.add_all(rows)
    session.flush()
    settings = mailer.settings_for(session)
    if settings is not None:
        for row in rows:
            address = chosen[row.user_id].email
            if address:
                subject, body = mailer.compose(kind=kind, params=params, link=link, settings=settings)
                session.add(
                    OutboxEmail(
                        notification_id=row.id,
                        recipient=address,
                        subject=subject,
                        body=body,
                        max_attempts=settings.max_attempts,
                    )
                )
        session.flush()
    return rows


def _filing_link(filing: Filing, anchor: str = "") -> str:
    return f"/filings/{filing.id}" + (f"#{anchor}" if anchor else "")


def _audit_link(job: AuditJob) -> str:
    return f"/audits/{job.id}"


# --- events ----------------------------------------------------------------------------------------------------------


def comment_added(*, session: Session, actor: Actor, filing: Filing, comment: Comment) -> list[Notification]:
    """A comment on ``filing``'s thread: a city team's → reviewers; a reviewer's → the city; a note → reviewers."""
    if comment.reviewer_only:
        kind, recipients = Kind.REVIEWER_NOTE, _reviewers(session)
    elif actor.role == Role.CITY:
        kind, recipients = Kind.COMMENT, _reviewers(session)
    elif actor.role == Role.REVIEWER:
        kind, recipients = Kind.COMMENT, _city_accounts(session, filing.city_code)
    else:
        return []
    return _notify(
        session,
        recipients=recipients,
        actor=actor,
        kind=kind,
        filing=filing,
        link=_filing_link(filing, "comments"),
        params={"author": _name(session, actor.user_id), "excerpt": _excerpt(comment.body), "comment_id": comment.id},
    )


def decision_proposed(*, session: Session, actor: Actor, decision: Decision, filing: Filing) -> list[Notification]:
    """A proposal waiting for a countersignature → the other reviewers. Nothing when it took effect at once."""
    if decision.state != DecisionState.PROPOSED:
        return []
    return _notify(
        session,
        recipients=_reviewers(session),
        actor=actor,
        kind=Kind.DECISION_PROPOSED,
        filing=filing,
        link=_filing_link(filing, "decisions"),
        params={"author": _name(session, actor.user_id), "outcome": decision.outcome, "decision_id": decision.id},
    )


def decision_effective(*, session: Session, actor: Actor, decision: Decision, filing: Filing) -> list[Notification]:
    """A decision took effect → the filing's city accounts and the proposer (with the filing number, if issued)."""
    return _notify(
        session,
        recipients=[*_city_accounts(session, filing.city_code), *_accounts(session, [decision.proposed_by_id])],
        actor=actor,
        kind=Kind.DECISION_EFFECTIVE,
        filing=filing,
        link=_filing_link(filing, "decisions"),
        params={"outcome": decision.outcome, "number": decision.filing_number, "decision_id": decision.id},
    )


def decision_withdrawn(
    *, session: Session, actor: Actor, decision: Decision, filing: Filing, reason: str
) -> list[Notification]:
    """A proposal withdrawn by its proposer, or refused by another reviewer → the other reviewers and the proposer."""
    refused = decision.proposed_by_id != actor.user_id
    return _notify(
        session,
        recipients=[*_accounts(session, [decision.proposed_by_id]), *_reviewers(session)],
        actor=actor,
        kind=Kind.DECISION_REFUSED if refused else Kind.DECISION_WITHDRAWN,
        filing=filing,
        link=_filing_link(filing, "decisions"),
        params={"author": _name(session, actor.user_id), "reason": _excerpt(reason), "decision_id": decision.id},
    )


def audit_finished(*, session: Session, job_id: int) -> list[Notification]:
    """An audit ended. Done or failed → the reviewer who started it (every reviewer for a scheduled re-audit); a
    periodic re-audit that failed or did not meet the policy → reviewers and the filing's city accounts."""
    job = session.get(AuditJob, job_id)
    if job is None or job.state not in (JobState.DONE, JobState.FAILED):
        return []
    filing = session.get(Filing, job.filing_id)
    failed = job.state == JobState.FAILED or job.verdict == policies.DOES_NOT_MEET
    if job.reason == REAUDIT and failed:
        kind = Kind.REAUDIT_FAILED
        recipients = [*_reviewers(session), *_city_accounts(session, filing.city_code)]
    else:
        kind = Kind.AUDIT_DONE if job.state == JobState.DONE else Kind.AUDIT_FAILED
        recipients = _accounts(session, [job.requested_by_id]) if job.requested_by_id else _reviewers(session)
    return _notify(
        session,
        recipients=recipients,
        actor=None,
        kind=kind,
        filing=filing,
        link=_audit_link(job),
        params={"audit": job.id, "verdict": job.verdict, "error": _excerpt(job.error) or "—"},
    )


def reaudits_queued(*, session: Session, jobs: Iterable[AuditJob]) -> list[Notification]:
    """Periodic re-audits queued because they are due → reviewers and each filing's city accounts."""
    rows: list[Notification] = []
    for job in jobs:
        filing = session.get(Filing, job.filing_id)
        due = filing.next_audit_due.date().isoformat() if filing.next_audit_due else "—"
        rows += _notify(
            session,
            recipients=[*_reviewers(session), *_city_accounts(session, filing.city_code)],
            actor=None,
            kind=Kind.REAUDIT_QUEUED,
            filing=filing,
            link=_audit_link(job),
            params={"audit": job.id, "due": due},
        )
    return rows


def filings_expired(*, session: Session, expired: Iterable[tuple[Filing, datetime]]) -> list[Notification]:
    """Filings expired because their re-audit is overdue beyond the grace period (filing, due date) → reviewers and
    each filing's city accounts."""
    rows: list[Notification] = []
    for filing, due in expired:
        rows += _notify(
            session,
            recipients=[*_reviewers(session), *_city_accounts(session, filing.city_code)],
            actor=None,
            kind=Kind.FILING_EXPIRED,
            filing=filing,
            link=_filing_link(filing),
            params={"due": due.date().isoformat()},
        )
    return rows


def concern_raised(
    *, session: Session, filing: Filing, concern_id: int, reference: str, excerpt: str
) -> list[Notification]:
    """A member of the public raised a concern about ``filing`` → every reviewer, with an excerpt (no contact)."""
    return _notify(
        session,
        recipients=_reviewers(session),
        actor=None,
        kind=Kind.CONCERN_RAISED,
        filing=filing,
        link=_filing_link(filing, f"concern-{concern_id}"),
        params={"reference": reference, "excerpt": _excerpt(excerpt), "concern_id": concern_id},
    )


# --- the inbox -------------------------------------------------------------------------------------------------------


def _mine(actor: Actor):
    return Notification.user_id == actor.user_id


def unread_count(*, session: Session, actor: Actor) -> int:
    """How many of ``actor``'s notifications are unread (0 for the anonymous public)."""
    if not actor.is_authenticated:
        return 0
    return session.exec(
        select(func.count()).select_from(Notification).where(_mine(actor), Notification.read_at.is_(None))
    ).one()


def inbox(*, session: Session, actor: Actor, unread_only: bool = False, page: int = 1, per_page: int = 50) -> Page:
    """``actor``'s notifications, newest first, one page at a time. Raises Unprocessable for a bad page."""
    if page < 1 or not 1 <= per_page <= MAX_PER_PAGE:
        raise Unprocessable(
            f"page starts at 1 and per_page is between 1 and {MAX_PER_PAGE}.", code="bad_page", pointer="/query/page"
        )
    condition = _mine(actor)
    if unread_only:
        condition = sa.and_(condition, Notification.read_at.is_(None))
    total = session.exec(select(func.count()).select_from(Notification).where(condition)).one()
    items = session.exec(
        select(Notification)
        .where(condition)
        .order_by(Notification.created_at.desc(), Notification.id.desc())
        .offset((page - 1) * per_page)
        .limit(per_page)
    ).all()
    return Page(
        items=list(items),
        total=total,
        unread=unread_count(session=session, actor=actor),
        page=page,
        per_page=per_page,
    )


def get(*, session: Session, actor: Actor, notification_id: int) -> Notification:
    """One of ``actor``'s notifications. Raises NotFound for another account's (or none)."""
    row = session.get(Notification, notification_id)
    if row is None or row.user_id != actor.user_id:
        raise NotFound("No such notification.", code="notification_not_found")
    return row


def mark_read(*, session: Session, actor: Actor, notification_id: int) -> Notification:
    """Mark one of ``actor``'s notifications read (again is harmless). Raises NotFound for another's."""
    row = get(session=session, actor=actor, notification_id=notification_id)
    if row.read_at is None:
        row.read_at = utcnow()
        session.add(row)
        session.flush()
    return row


def mark_all_read(*, session: Session, actor: Actor) -> int:
    """Mark every unread notification of ``actor`` read; returns how many were unread."""
    result = session.execute(
        sa.update(Notification).where(_mine(actor), Notification.read_at.is_(None)).values(read_at=utcnow())
    )
    return result.rowcount
