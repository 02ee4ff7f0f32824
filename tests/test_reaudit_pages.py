"""The re-audit schedule on the pages: the next audit date on a filing's page, and the reviewers' /reaudits list of
failed, overdue (with the day each filing expires) and soon-due re-audits, which the API lists too."""

from __future__ import annotations

import copy
import re
from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlmodel import Session

from registry import demo
from registry.audit_jobs.models import AuditJob
from registry.db import utcnow
from registry.filings.models import Filing

GRACE_III = timedelta(days=30)  # the shipped policy's grace period for tier III (the demo filing's tier)


def _set_due(engine, filing_id: int, due) -> None:
    with engine.begin() as conn:
        conn.execute(sa.update(Filing.__table__).where(Filing.__table__.c.id == filing_id).values(next_audit_due=due))


def _failed_reaudit(engine, filing_id: int) -> int:
    with Session(engine) as s:
        filing = s.get(Filing, filing_id)
        job = AuditJob(
            filing_id=filing_id,
            state="failed",
            dataset="german-credit",
            tier=filing.risk_tier or "III",
            model_sha256=filing.model_sha256,
            reason="reaudit",
            error="the model's inputs do not fit the data set",
            finished_at=utcnow(),
        )
        s.add(job)
        s.commit()
        return job.id


def _section(html: str, table_id: str) -> str:
    return re.search(rf'<table id="{table_id}">(.*?)</table>', html, flags=re.S).group(1)


def _links(fragment: str) -> set[int]:
    return {int(i) for i in re.findall(r'href="/filings/(\d+)"', fragment)}


@pytest.fixture
def schedule_state(engine, filing_in):
    now = utcnow()
    overdue = filing_in("approved")
    _set_due(engine, overdue, now - timedelta(days=5))
    overdue_suspended = filing_in("suspended")
    _set_due(engine, overdue_suspended, now - timedelta(days=1))
    due_soon = filing_in("approved")
    _set_due(engine, due_soon, now + timedelta(days=10))
    far = filing_in("approved")
    _set_due(engine, far, now + timedelta(days=200))
    failed = filing_in("approved_with_conditions")
    job = _failed_reaudit(engine, failed)
    return {
        "now": now,
        "overdue": overdue,
        "overdue_suspended": overdue_suspended,
        "due_soon": due_soon,
        "far": far,
        "failed": failed,
        "failed_job": job,
    }


def test_reviewers_see_failed_overdue_and_soon_due_reaudits(browser_as, engine, schedule_state):
    s = schedule_state
    reviewer = browser_as("reviewer1")
    reviewer.set_cookie("lang", "en")
    response = reviewer.get("/reaudits")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    failed = _section(html, "reaudits-failed")
    assert _links(failed) == {s["failed"]}
    assert f'href="/audits/{s["failed_job"]}"' in failed and "do not fit the data set" in failed
    overdue = _section(html, "reaudits-overdue")
    assert _links(overdue) == {s["overdue"], s["overdue_suspended"]}
    # the soonest to expire first, each with the day it expires: due date + the tier's grace period
    assert overdue.index(f'/filings/{s["overdue"]}"') < overdue.index(f'/filings/{s["overdue_suspended"]}"')
    assert (s["now"] - timedelta(days=5) + GRACE_III).strftime("%Y-%m-%d") in overdue
    assert _links(_section(html, "reaudits-due-soon")) == {s["due_soon"]}
    assert s["far"] not in _links(html)
    assert "Failed: 1 · overdue: 2 · due within 30 days: 1" in html


def test_the_api_lists_the_same_with_the_kind_and_the_expiry(api, schedule_state):
    s = schedule_state
    items = api("reviewer1").get("/api/v1/reaudits/attention").get_json()["items"]
    assert [(i["kind"], i["filing"]["id"]) for i in items] == [
        ("failed_reaudit", s["failed"]),
        ("overdue", s["overdue"]),
        ("overdue", s["overdue_suspended"]),
        ("due_soon", s["due_soon"]),
    ]
    assert items[0]["reaudit"]["id"] == s["failed_job"] and items[1]["reaudit"] is None
    assert items[1]["expires_at"][:10] == (s["now"] - timedelta(days=5) + GRACE_III).date().isoformat()


def test_only_reviewers_and_administrators_have_the_list_and_its_link(browser_as, schedule_state):
    assert browser_as("admin").get("/reaudits").status_code == 200
    assert browser_as("zhengzhou").get("/reaudits").status_code == 403
    assert 'href="/reaudits"' in browser_as("reviewer1").get("/filings").get_data(as_text=True)
    assert 'href="/reaudits"' not in browser_as("zhengzhou").get("/filings").get_data(as_text=True)


def test_an_empty_list_says_so(browser_as):
    html = browser_as("reviewer1").get("/reaudits").get_data(as_text=True)
    assert html.count('<td colspan="7">') == 3


def _next_audit(html: str) -> str | None:
    match = re.search(r'<dd id="next-audit-due">(.*?)</dd>', html, flags=re.S)
    return match.group(1) if match else None


def test_the_filing_page_shows_the_next_audit_date_to_reviewers_and_the_city(api, browser_as, filing_in):
    filing_id = filing_in("approved")
    due = api("reviewer1").get(f"/api/v1/filings/{filing_id}").get_json()["next_audit_due"]
    assert due is not None
    for who in ("zhengzhou", "reviewer1"):
        shown = _next_audit(browser_as(who).get(f"/filings/{filing_id}").get_data(as_text=True))
        assert shown is not None and f'<time datetime="{due}">{due[:10]}</time>' in shown, who
        assert "逾期" not in shown
    assert (
        _next_audit(browser_as("reviewer1").get(f"/filings/{filing_in('under_review')}").get_data(as_text=True)) is None
    )


def test_an_overdue_reaudit_is_flagged_with_the_day_the_filing_expires(browser_as, engine, filing_in):
    filing_id = filing_in("approved")
    due = utcnow() - timedelta(days=3)
    _set_due(engine, filing_id, due)
    client = browser_as("zhengzhou")
    client.set_cookie("lang", "en")
    shown = _next_audit(client.get(f"/filings/{filing_id}").get_data(as_text=True))
    assert "Overdue" in shown and (due + GRACE_III).strftime("%Y-%m-%d") in shown


def test_a_tier_i_filing_is_re_audited_only_on_change(browser_as, filing_in):
    technical, reports = demo.documents()
    document = copy.deepcopy(technical[3])  # licence approval, tier I
    document["city_code"] = "410100"
    filing_id = filing_in("approved", document=document, report=copy.deepcopy(reports[3]))
    client = browser_as("zhengzhou")
    client.set_cookie("lang", "en")
    shown = _next_audit(client.get(f"/filings/{filing_id}").get_data(as_text=True))
    assert shown is not None and "only when the algorithm changes" in shown
