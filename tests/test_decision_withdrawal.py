"""Who withdrew a proposed decision (or refused to countersign it) and when: kept with the decision, shown on the
filing's decisions panel and in the decision JSON, and recovered for decisions withdrawn before it was kept."""

from __future__ import annotations

import re
from datetime import datetime

import sqlalchemy as sa
from alembic import command
from sqlmodel import Session, select

from registry import migrations
from registry.accounts import service as accounts
from registry.decisions.models import Decision
from registry.filings.models import Comment
from tests.conftest import csrf_token


def _propose(api, filing_id: int) -> dict:
    decision = api("reviewer1").post(f"/api/v1/filings/{filing_id}/decisions", json={"outcome": "approved"})
    assert decision.status_code == 201 and decision.get_json()["state"] == "proposed"  # tier III: four eyes
    return decision.get_json()


def _user_id(engine, username: str) -> int:
    with Session(engine) as s:
        return accounts.get_user_by_name(session=s, username=username).id


def test_a_refusal_records_who_and_when_in_the_decision_json(api, engine, filing_in):
    filing_id = filing_in("under_review")
    decision = _propose(api, filing_id)
    assert decision["withdrawn_by_id"] is None and decision["withdrawn_at"] is None
    before = datetime.now().astimezone()
    refused = api("reviewer2").post(f"/api/v1/decisions/{decision['id']}/withdraw", json={"reason": "No audit yet"})
    assert refused.status_code == 200
    body = refused.get_json()
    assert body["state"] == "withdrawn"
    assert body["withdrawn_by_id"] == _user_id(engine, "reviewer2") and body["withdrawn_by"] == "reviewer2"
    assert datetime.fromisoformat(body["withdrawn_at"]) >= before
    city_view = api("zhengzhou").get(f"/api/v1/decisions/{decision['id']}").get_json()
    assert city_view["withdrawn_by"] == "reviewer2" and city_view["withdrawn_at"] == body["withdrawn_at"]
    assert "note" not in city_view  # the reason stays with the reviewers


def test_the_panel_shows_who_refused_or_withdrew_and_when(api, browser_as, filing_in):
    filing_id = filing_in("under_review")
    refused = _propose(api, filing_id)
    api("reviewer2").post(f"/api/v1/decisions/{refused['id']}/withdraw", json={"reason": "No audit yet"})
    withdrawn = _propose(api, filing_id)
    reviewer = browser_as("reviewer1")
    page = reviewer.get(f"/filings/{filing_id}").get_data(as_text=True)
    reviewer.post(
        f"/decisions/{withdrawn['id']}/withdraw", data={"reason": "Proposed too early", "csrf_token": csrf_token(page)}
    )
    decisions = {d["id"]: d for d in api("reviewer1").get(f"/api/v1/filings/{filing_id}/decisions").get_json()["items"]}
    city = browser_as("zhengzhou")
    city.set_cookie("lang", "en")
    html = city.get(f"/filings/{filing_id}").get_data(as_text=True)
    for decision_id, heading, who in (
        (refused["id"], "Countersignature refused by", "reviewer2"),
        (withdrawn["id"], "Withdrawn by", "reviewer1"),
    ):
        at = decisions[decision_id]["withdrawn_at"]
        shown = re.search(rf"<dt>([^<]*)</dt><dd id=\"decision-{decision_id}-withdrawn\">(.*?)</dd>", html, flags=re.S)
        assert shown is not None, decision_id
        assert shown.group(1) == heading
        assert who in shown.group(2) and f'<time datetime="{at}">' in shown.group(2)
    assert "Proposed too early" not in html and "No audit yet" not in html
    chinese = browser_as("zhengzhou").get(f"/filings/{filing_id}").get_data(as_text=True)
    assert "拒绝会签" in chinese and "撤回人" in chinese


def test_the_migration_recovers_who_and_when_from_the_withdrawal_note(api, engine, filing_in):
    filing_id = filing_in("under_review")
    decision = _propose(api, filing_id)
    api("reviewer2").post(f"/api/v1/decisions/{decision['id']}/withdraw", json={"reason": "No audit yet"})
    with engine.begin() as connection:
        command.downgrade(migrations.config(connection), "5e7a2b0d9c11")
    with engine.begin() as connection:
        columns = {c["name"] for c in sa.inspect(connection).get_columns("decision")}
    assert "withdrawn_by_id" not in columns
    migrations.upgrade(engine)
    with Session(engine) as s:
        row = s.get(Decision, decision["id"])
        note = s.exec(select(Comment).where(Comment.filing_id == filing_id, Comment.reviewer_only)).one()
    assert note.body.startswith(f"Countersignature refused (decision {decision['id']}):")
    assert row.withdrawn_by_id == note.author_id == _user_id(engine, "reviewer2")
    assert row.withdrawn_at == note.created_at
