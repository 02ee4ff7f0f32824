"""Periodic re-audit: the next audit date per tier, `registry reaudit due` queueing and expiring, and the filings
whose re-audit failed in front of the reviewers. The clock moves by ``--now`` / ``now=``; nothing sleeps."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from importlib import resources

import pytest
from click.testing import CliRunner
from dateutil.relativedelta import relativedelta
from sqlmodel import Session, select

from audits import policy as policies
from registry.audit_jobs import schedule
from registry.audit_jobs import service as audit_service
from registry.audit_jobs.models import AuditJob
from registry.audit_jobs.worker import run_pending
from registry.cli import main
from registry.db import utcnow
from registry.filings.models import Filing, FilingTransition

SHIPPED = json.loads((resources.files("audits") / "policies" / "default.json").read_text("utf-8"))
DECIDED_AT = datetime(2026, 8, 31, 9, 30, tzinfo=UTC)


@pytest.mark.parametrize(("tier", "months"), [("IV", 6), ("III", 12), ("II", 24), ("I", None)])
def test_next_due_follows_the_tier_in_the_shipped_policy(tier, months):
    assert SHIPPED["tiers"][tier]["reaudit_interval_months"] == months  # the brief's intervals are the policy's
    expected = None if months is None else DECIDED_AT + relativedelta(months=months)
    assert schedule.next_due(decided_at=DECIDED_AT, tier=tier, policy=policies.load()) == expected


def test_next_due_keeps_to_the_calendar():
    policy = policies.load()
    assert schedule.next_due(decided_at=DECIDED_AT, tier="IV", policy=policy) == datetime(
        2027, 2, 28, 9, 30, tzinfo=UTC
    )
    assert schedule.next_due(decided_at=DECIDED_AT, tier=None, policy=policy) == DECIDED_AT + relativedelta(months=12)


def _filing(engine, filing_id: int) -> Filing:
    with Session(engine, expire_on_commit=False) as s:
        return s.get(Filing, filing_id)


def _jobs(engine, filing_id: int) -> list[AuditJob]:
    with Session(engine, expire_on_commit=False) as s:
        return list(s.exec(select(AuditJob).where(AuditJob.filing_id == filing_id).order_by(AuditJob.id)))


def _done_audit(engine, filing_id: int, *, dataset: str = "german-credit") -> int:
    """A finished review audit of the filing, as if a reviewer had run one before the decision."""
    filing = _filing(engine, filing_id)
    with Session(engine) as s:
        job = AuditJob(
            filing_id=filing_id,
            state="done",
            dataset=dataset,
            sensitive_attributes=["sex", "age_band"],
            tier=filing.risk_tier or "III",
            model_sha256=filing.model_sha256,
            seed=3,
            replicates=20,
            verdict="meets",
            progress=1.0,
            finished_at=utcnow(),
        )
        s.add(job)
        s.commit()
        return job.id


def _reaudit_due(app, monkeypatch, now: datetime) -> str:
    monkeypatch.setenv("REGISTRY_INSTANCE", app.config["INSTANCE_PATH"])
    monkeypatch.setenv("REGISTRY_LOG_SIGNING_KEY_FILE", app.config["LOG_SIGNING_KEY_FILE"])
    monkeypatch.setenv("DATABASE_URL", app.config["DATABASE_URL"])
    monkeypatch.setenv("REGISTRY_SECRET_KEY", "test-secret-key")
    result = CliRunner().invoke(main, ["reaudit", "due", "--now", now.isoformat()])
    assert result.exit_code == 0, result.output
    return result.output


def _expected_due(filing: Filing) -> datetime | None:
    months = SHIPPED["tiers"][filing.risk_tier or "III"]["reaudit_interval_months"]
    return None if months is None else filing.decided_at + relativedelta(months=months)


@pytest.fixture
def due_filing(app, engine, filing_in):
    """An approved filing with a done audit, and its (tier-dependent) next audit date."""
    filing_id = filing_in("approved")
    _done_audit(engine, filing_id)
    filing = _filing(engine, filing_id)
    assert filing.next_audit_due is not None, "the demo filing's tier is re-audited periodically"
    return filing


def test_approving_sets_the_next_audit_date_from_the_tier(engine, filing_in, api):
    filing = _filing(engine, filing_in("approved"))
    assert filing.decided_at is not None
    assert filing.next_audit_due == _expected_due(filing)
    shown = api("reviewer1").get(f"/api/v1/filings/{filing.id}").get_json()
    assert shown["next_audit_due"] == (filing.next_audit_due.isoformat() if filing.next_audit_due else None)
    assert _filing(engine, filing_in("under_review")).next_audit_due is None


def test_reaudit_due_queues_one_job_once_the_date_has_passed(app, engine, due_filing, monkeypatch):
    before = _reaudit_due(app, monkeypatch, due_filing.next_audit_due - timedelta(days=1))
    assert "Queued 0 re-audit(s), expired 0 filing(s)" in before
    assert [j.reason for j in _jobs(engine, due_filing.id)] == ["review"]

    after = _reaudit_due(app, monkeypatch, due_filing.next_audit_due + timedelta(hours=1))
    assert "Queued 1 re-audit(s), expired 0 filing(s)" in after
    assert f"of filing {due_filing.id} on german-credit" in after
    reaudits = [j for j in _jobs(engine, due_filing.id) if j.reason == "reaudit"]
    assert len(reaudits) == 1
    job = reaudits[0]
    assert job.state == "queued" and job.dataset == "german-credit"
    assert job.sensitive_attributes == ["sex", "age_band"] and job.model_sha256 == due_filing.model_sha256
    assert job.requested_by_id is None

    again = _reaudit_due(app, monkeypatch, due_filing.next_audit_due + timedelta(hours=2))
    assert "Queued 0 re-audit(s)" in again
    assert len([j for j in _jobs(engine, due_filing.id) if j.reason == "reaudit"]) == 1


def test_a_filing_never_audited_is_skipped(engine, filing_in):
    filing = _filing(engine, filing_in("approved"))
    with Session(engine) as s:
        queued = schedule.queue_due(session=s, now=filing.next_audit_due + timedelta(days=1), policy=policies.load())
        s.commit()
    assert queued == []


def test_past_due_and_grace_the_filing_expires_by_the_system(app, engine, due_filing, monkeypatch, api):
    grace = timedelta(days=SHIPPED["tiers"][due_filing.risk_tier or "III"]["grace_period_days"])
    within = _reaudit_due(app, monkeypatch, due_filing.next_audit_due + grace - timedelta(hours=1))
    assert "expired 0 filing(s)" in within
    assert _filing(engine, due_filing.id).state == "approved"

    output = _reaudit_due(app, monkeypatch, due_filing.next_audit_due + grace + timedelta(hours=1))
    assert f"expired filing {due_filing.id}" in output and "expired 1 filing(s)" in output
    expired = _filing(engine, due_filing.id)
    assert expired.state == "expired" and expired.next_audit_due is None
    with Session(engine) as s:
        last = s.exec(
            select(FilingTransition)
            .where(FilingTransition.filing_id == due_filing.id)
            .order_by(FilingTransition.id.desc())
        ).first()
    assert last.action == "expire" and last.actor_role == "system" and last.actor_id is None
    assert due_filing.next_audit_due.date().isoformat() in last.reason
    history = api("zhengzhou").get(f"/api/v1/filings/{due_filing.id}/history").get_json()["items"]
    assert history[-1]["actor_role"] == "system" and history[-1]["to_state"] == "expired"
    assert "Queued 0 re-audit(s), expired 0" in _reaudit_due(app, monkeypatch, expired.decided_at + grace * 10)


def _run_reaudit(app, engine, monkeypatch, due_filing, verdict: str | None) -> AuditJob:
    """Queue the due re-audit and run it; ``verdict`` None runs the real engine (the demo model does not fit
    German credit, so the job fails), else the engine is replaced by one that answers that verdict."""
    _reaudit_due(app, monkeypatch, due_filing.next_audit_due + timedelta(hours=1))
    if verdict is not None:
        monkeypatch.setattr(audit_service.audit_engine, "run_audit", lambda **_kw: {"verdict": verdict})
        monkeypatch.setattr(audit_service, "_input_order", lambda *_a: None)
    assert run_pending(engine=engine, content=app.extensions["registry"].content) == 1
    return [j for j in _jobs(engine, due_filing.id) if j.reason == "reaudit"][-1]


@pytest.mark.parametrize("verdict", ["does_not_meet", None])
def test_a_reaudit_that_does_not_meet_the_policy_puts_the_filing_in_front_of_reviewers(
    app, engine, api, due_filing, monkeypatch, verdict
):
    job = _run_reaudit(app, engine, monkeypatch, due_filing, verdict)
    assert (job.state, job.verdict) == (("done", "does_not_meet") if verdict else ("failed", None))
    for who in ("reviewer1", "admin"):
        answer = api(who).get("/api/v1/reaudits/attention")
        assert answer.status_code == 200
        items = answer.get_json()["items"]
        assert [(i["filing"]["id"], i["reaudit"]["id"]) for i in items] == [(due_filing.id, job.id)]
    assert api("zhengzhou").get("/api/v1/reaudits/attention").status_code == 403
    # the schedule does not queue it again while it waits for a reviewer
    assert "Queued 0 re-audit(s)" in _reaudit_due(app, monkeypatch, due_filing.next_audit_due + timedelta(days=1))
    assert _filing(engine, due_filing.id).next_audit_due == due_filing.next_audit_due


def test_a_reaudit_that_meets_the_policy_moves_the_date_forward(app, engine, api, due_filing, monkeypatch):
    job = _run_reaudit(app, engine, monkeypatch, due_filing, "meets")
    assert job.state == "done" and job.verdict == "meets"
    filing = _filing(engine, due_filing.id)
    months = SHIPPED["tiers"][filing.risk_tier or "III"]["reaudit_interval_months"]
    assert filing.next_audit_due == job.finished_at + relativedelta(months=months)
    assert filing.revision == due_filing.revision  # the schedule never collides with a person's edit
    assert api("reviewer1").get("/api/v1/reaudits/attention").get_json()["items"] == []


def test_a_reviewers_audit_of_a_decided_filing_is_a_reaudit_and_its_failure_is_noted_for_reviewers(
    app, engine, api, due_filing
):
    started = api("reviewer1").post(f"/api/v1/filings/{due_filing.id}/audits", json={"dataset": "german-credit"})
    assert started.status_code == 202, started.get_json()
    assert started.get_json()["reason"] == "reaudit"
    assert run_pending(engine=engine, content=app.extensions["registry"].content) == 1  # the demo model does not fit
    items = api("reviewer1").get("/api/v1/reaudits/attention").get_json()["items"]
    assert [i["reaudit"]["id"] for i in items] == [started.get_json()["id"]]
    notes = api("reviewer1").get(f"/api/v1/filings/{due_filing.id}/comments").get_json()["items"]
    assert any(n["reviewer_only"] and "needs a reviewer's attention" in n["body"] for n in notes)
    city_notes = api("zhengzhou").get(f"/api/v1/filings/{due_filing.id}/comments").get_json()["items"]
    assert not any("needs a reviewer's attention" in n["body"] for n in city_notes)
