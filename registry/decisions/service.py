"""Use cases for decisions: propose, countersign, withdraw, read. No Flask; each runs in the caller's transaction.

Four eyes: a reviewer proposes an outcome; on a filing of risk tier I or II the decision takes effect at once, on
tier III or IV (or a filing with no tier yet, which counts as high risk) it waits for a second reviewer's
countersignature, and the proposer can never be that second reviewer. This module is the only caller of
``filings.service.apply_decision``, the only way a filing is approved or rejected.
"""

from __future__ import annotations

from sqlmodel import Session, select

from registry.audit_jobs import schedule
from registry.audit_jobs.models import AuditJob, JobState
from registry.authz import Actor
from registry.db import utcnow
from registry.decisions.models import Decision, DecisionState, Outcome
from registry.errors import Conflict, Forbidden, IllegalTransition, NotFound, Unprocessable
from registry.filings import lifecycle
from registry.filings import service as filings
from registry.filings.lifecycle import State
from registry.filings.models import Comment, Filing, FilingTransition
from registry.notifications import service as notifications

MAX_ITEMS = 50
MAX_CONDITION = 2000  # schemas/decision.json
MAX_REASON = 4000
MAX_NOTE = 4000


def _require_reviewer(actor: Actor, what: str) -> None:
    if actor.role != "reviewer":
        raise Forbidden(f"Only provincial reviewers may {what} a decision.", code="reviewers_only")


def _texts(values, *, pointer: str, limit: int) -> list[str]:
    """Clean a list of texts: blank lines dropped. Raises Unprocessable naming the item at fault."""
    if isinstance(values, str) or not isinstance(values, list | tuple):
        raise Unprocessable("Give a list of texts.", code="bad_field", pointer=pointer)
    if len(values) > MAX_ITEMS:
        raise Unprocessable(f"At most {MAX_ITEMS} items.", code="too_many", pointer=pointer)
    cleaned = []
    for index, value in enumerate(values):
        if not isinstance(value, str):
            raise Unprocessable("Each item is a text.", code="bad_field", pointer=f"{pointer}/{index}")
        if len(value.strip()) > limit:
            raise Unprocessable(
                f"Each item has at most {limit:,} characters.", code="too_long", pointer=f"{pointer}/{index}"
            )
        if value.strip():
            cleaned.append(value.strip())
    return cleaned


def _audits(session: Session, filing: Filing, audit_job_ids) -> tuple[list[int], list[str]]:
    """The done audits of ``filing`` named by ``audit_job_ids``, and their report digests, in the order given."""
    if isinstance(audit_job_ids, str) or not isinstance(audit_job_ids, list | tuple):
        raise Unprocessable("Give a list of audit job ids.", code="bad_field", pointer="/audit_job_ids")
    ids: list[int] = []
    digests: list[str] = []
    for index, job_id in enumerate(audit_job_ids):
        job = session.get(AuditJob, job_id) if isinstance(job_id, int) and not isinstance(job_id, bool) else None
        if job is None or job.filing_id != filing.id or job.state != JobState.DONE or job.report_sha256 is None:
            raise Unprocessable(
                "A decision rests only on finished (done) audits of this filing.",
                code="bad_audit",
                pointer=f"/audit_job_ids/{index}",
            )
        if job.id not in ids:
            ids.append(job.id)
            if job.report_sha256 not in digests:
                digests.append(job.report_sha256)
    return ids, digests


def _open_proposal(session: Session, filing_id: int) -> Decision | None:
    return session.exec(
        select(Decision).where(Decision.filing_id == filing_id, Decision.state == DecisionState.PROPOSED)
    ).first()


def _take_effect(session: Session, actor: Actor, decision: Decision, filing: Filing, province: str) -> None:
    filings.apply_decision(session=session, actor=actor, filing=filing, decision=decision, province=province)
    schedule.on_decision(filing=filing)  # an approved filing's first re-audit date, from its tier
    decision.state = DecisionState.EFFECTIVE
    decision.effective_at = filing.decided_at or utcnow()
    decision.filing_number = filing.filing_number if decision.outcome != Outcome.REJECTED else None
    session.add(decision)
    notifications.decision_effective(session=session, actor=actor, decision=decision, filing=filing)


def propose(
    *,
    session: Session,
    actor: Actor,
    filing_id: int,
    outcome: str,
    conditions=(),
    reasons=(),
    audit_job_ids=(),
    note: str = "",
    province: str = "豫",
) -> Decision:
    """Propose a decision on a filing under review; on tier I or II it takes effect at once (with a filing number
    when approved), otherwise it waits for a second reviewer's countersignature and the filing stays under review.

    ``note`` is for reviewers only. Raises NotFound, Forbidden (not a reviewer), IllegalTransition (the filing is
    not under review), Conflict (a proposal is already open) or Unprocessable (the outcome; no condition for
    approved_with_conditions, at /conditions; no reason for rejected, at /reasons; an audit that is not a done
    audit of this filing, at /audit_job_ids/N).
    """
    _require_reviewer(actor, "propose")
    filing = filings.get_filing(session=session, actor=actor, filing_id=filing_id)
    if outcome not in Outcome._value2member_map_:
        raise Unprocessable(
            f"The outcome is one of {', '.join(o.value for o in Outcome)}.", code="bad_outcome", pointer="/outcome"
        )
    if filing.state != State.UNDER_REVIEW:
        raise IllegalTransition(
            f"A decision is proposed on a filing under review; this one is {filing.state}.",
            code="not_under_review",
            current_state=filing.state,
            allowed_actions=lifecycle.allowed_actions(filing.state),
        )
    conditions = _texts(conditions, pointer="/conditions", limit=MAX_CONDITION)
    reasons = _texts(reasons, pointer="/reasons", limit=MAX_REASON)
    if outcome == Outcome.APPROVED_WITH_CONDITIONS and not conditions:
        raise Unprocessable(
            "Approval with conditions lists at least one condition.", code="conditions_required", pointer="/conditions"
        )
    if outcome != Outcome.APPROVED_WITH_CONDITIONS and conditions:
        raise Unprocessable(
            "Only an approval with conditions has conditions.", code="unexpected_conditions", pointer="/conditions"
        )
    if outcome == Outcome.REJECTED and not reasons:
        raise Unprocessable("A rejection gives at least one reason.", code="reasons_required", pointer="/reasons")
    if not isinstance(note, str) or len(note) > MAX_NOTE:
        raise Unprocessable(f"The note has at most {MAX_NOTE:,} characters.", code="bad_field", pointer="/note")
    job_ids, digests = _audits(session, filing, audit_job_ids)
    if _open_proposal(session, filing.id) is not None:
        raise Conflict(
            "A decision on this filing is already proposed; it must be countersigned or withdrawn first.",
            code="proposal_open",
        )
    decision = Decision(
        filing_id=filing.id,
        outcome=outcome,
        state=DecisionState.PROPOSED,
        conditions=conditions,
        reasons=reasons,
        audit_job_ids=job_ids,
        audit_report_sha256=digests,
        tier=filing.risk_tier or "",
        proposed_by_id=actor.user_id,
        note=note.strip(),
    )
    session.add(decision)
    # Touching the filing bumps its revision: two proposals racing on one filing cannot both commit.
    filing.updated_at = utcnow()
    session.add(filing)
    session.flush()
    if not lifecycle.needs_countersignature(decision.tier):
        _take_effect(session, actor, decision, filing, province)
    session.flush()
    notifications.decision_proposed(session=session, actor=actor, decision=decision, filing=filing)
    return decision


def _get_for_update(session: Session, actor: Actor, decision_id: int) -> tuple[Decision, Filing]:
    decision = get(session=session, actor=actor, decision_id=decision_id)
    filing = session.get(Filing, decision.filing_id)
    if decision.state != DecisionState.PROPOSED:
        raise Conflict(f"This decision is already {decision.state}.", code="decision_not_open")
    return decision, filing


def countersign(*, session: Session, actor: Actor, decision_id: int, province: str = "豫") -> Decision:
    """A second reviewer countersigns a proposed decision, which takes effect: the filing is approved (and gets
    its filing number), approved with conditions, or rejected.

    Raises NotFound, Forbidden (not a reviewer, or the proposer), Conflict (the decision is not open, or the
    filing has moved since the proposal) or IllegalTransition (the filing is not under review).
    """
    _require_reviewer(actor, "countersign")
    decision, filing = _get_for_update(session, actor, decision_id)
    if decision.proposed_by_id == actor.user_id:
        raise Forbidden(
            "You proposed this decision; a second reviewer must countersign it (four eyes).",
            code="proposer_cannot_countersign",
        )
    moved = session.exec(
        select(FilingTransition.id).where(
            FilingTransition.filing_id == filing.id, FilingTransition.at > decision.proposed_at
        )
    ).first()
    if moved is not None or filing.state != State.UNDER_REVIEW:
        raise Conflict(
            "The filing has changed state since this decision was proposed; withdraw it and propose again.",
            code="proposal_stale",
        )
    decision.countersigned_by_id = actor.user_id
    decision.countersigned_at = utcnow()
    _take_effect(session, actor, decision, filing, province)
    session.flush()
    return decision


def withdraw(*, session: Session, actor: Actor, decision_id: int, reason: str) -> Decision:
    """The proposer withdraws a proposed decision, or another reviewer refuses to countersign it. The filing stays
    where it is (under review), and a new decision may be proposed.

    The reason is kept with the decision and as a reviewer-only note on the filing's thread (who and when).
    Raises NotFound, Forbidden (not a reviewer), Conflict (not open) or Unprocessable (no reason, at /reason).
    """
    _require_reviewer(actor, "withdraw")
    decision, filing = _get_for_update(session, actor, decision_id)
    reason = (reason or "").strip() if isinstance(reason, str) else ""
    if not reason or len(reason) > 2000:
        raise Unprocessable("Give a reason of 1 to 2,000 characters.", code="reason_required", pointer="/reason")
    refused = decision.proposed_by_id != actor.user_id
    heading = "Countersignature refused" if refused else "Proposal withdrawn"
    decision.state = DecisionState.WITHDRAWN
    decision.withdrawn_by_id, decision.withdrawn_at = actor.user_id, utcnow()
    decision.note = (decision.note + "\n" if decision.note else "") + f"{heading}: {reason}"
    decision.note = decision.note[-MAX_NOTE:]
    session.add(decision)
    session.add(
        Comment(
            filing_id=filing.id,
            author_id=actor.user_id,
            author_role=actor.kind,
            body=f"{heading} (decision {decision.id}): {reason}",
            reviewer_only=True,
        )
    )
    session.flush()
    notifications.decision_withdrawn(session=session, actor=actor, decision=decision, filing=filing, reason=reason)
    return decision


def get(*, session: Session, actor: Actor, decision_id: int) -> Decision:
    """The decision, if ``actor`` may read its filing (a city team its own city's). Raises NotFound otherwise."""
    decision = session.get(Decision, decision_id)
    if decision is None:
        raise NotFound("No such decision.", code="decision_not_found")
    try:
        filings.get_filing(session=session, actor=actor, filing_id=decision.filing_id)
    except NotFound:
        raise NotFound("No such decision.", code="decision_not_found") from None
    return decision


def list_for_filing(*, session: Session, actor: Actor, filing_id: int) -> list[Decision]:
    """The filing's decisions, oldest first, if ``actor`` may read the filing. Raises NotFound otherwise."""
    filing = filings.get_filing(session=session, actor=actor, filing_id=filing_id)
    return list(session.exec(select(Decision).where(Decision.filing_id == filing.id).order_by(Decision.id)))


def may_see_note(actor: Actor) -> bool:
    """Decision notes (and withdrawal reasons) are for reviewers and administrators, never for city teams."""
    return actor.role in ("reviewer", "admin")


def done_audits(*, session: Session, filing_id: int) -> list[AuditJob]:
    """The filing's finished audits, which a decision may rest on."""
    return list(
        session.exec(
            select(AuditJob)
            .where(AuditJob.filing_id == filing_id, AuditJob.state == JobState.DONE)
            .order_by(AuditJob.id)
        )
    )
