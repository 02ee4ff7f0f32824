"""Decisions through the API and the service: four eyes on tiers III and IV, filing numbers, and who may do what.

The Zhengzhou filing of ``documents`` is tier III; ``low_risk`` is a tier II Zhengzhou document of the demo data.
"""

import copy
import re

import pytest
from sqlmodel import Session

from registry import demo
from registry.accounts import service as accounts
from registry.audit_jobs.models import AuditJob
from registry.decisions import service as decisions
from registry.errors import Forbidden
from registry.filings import service as filings
from registry.filings.models import Filing
from registry.storage.models import StoredFile

NUMBER = re.compile(r"^豫算备410100-\d{4}-\d{4}$")


@pytest.fixture
def low_risk(documents):
    """A tier II Zhengzhou technical document (one reviewer decides alone)."""
    technical, _reports = demo.documents()
    for doc in technical:
        if doc["city_code"] == "410100" and doc is not technical[0]:
            document = copy.deepcopy(doc)
            break
    assert filings.risk.assess(document["impact_assessment"]["answers"]).tier in ("I", "II")
    return document


def _filing(api, filing_id, user="zhengzhou"):
    return api(user).get(f"/api/v1/filings/{filing_id}").get_json()


def _propose(api, filing_id, user="reviewer1", **body):
    body.setdefault("outcome", "approved")
    return api(user).post(f"/api/v1/filings/{filing_id}/decisions", json=body)


def _actor(session, name):
    return accounts.actor_for(accounts.get_user_by_name(session=session, username=name))


# --- tier I and II: one reviewer ------------------------------------------------------------------------------------


def test_one_reviewer_approves_a_tier_ii_filing_and_a_filing_number_is_issued(api, filing_in, low_risk):
    filing_id = filing_in("under_review", document=low_risk)
    response = _propose(api, filing_id)
    assert response.status_code == 201, response.get_json()
    decision = response.get_json()
    assert decision["state"] == "effective"
    assert NUMBER.match(decision["filing_number"])
    assert response.headers["Location"].endswith(f"/api/v1/decisions/{decision['id']}")
    filing = _filing(api, filing_id)
    assert filing["state"] == "approved"
    assert filing["filing_number"] == decision["filing_number"]


def test_a_rejection_issues_no_number(api, filing_in, low_risk):
    filing_id = filing_in("under_review", document=low_risk)
    decision = _propose(api, filing_id, outcome="rejected", reasons=["Selection rate gap"]).get_json()
    assert decision["state"] == "effective" and decision["filing_number"] is None
    assert _filing(api, filing_id)["state"] == "rejected"
    assert _filing(api, filing_id)["filing_number"] is None


# --- tier III and IV: four eyes -------------------------------------------------------------------------------------


def test_a_high_risk_proposal_leaves_the_filing_under_review(api, filing_in):
    filing_id = filing_in("under_review")
    assert _filing(api, filing_id)["risk_tier"] in ("III", "IV")
    decision = _propose(api, filing_id).get_json()
    assert decision["state"] == "proposed"
    assert decision["filing_number"] is None
    filing = _filing(api, filing_id)
    assert filing["state"] == "under_review"
    assert filing["filing_number"] is None


def test_the_proposer_cannot_countersign_and_nothing_changes(api, filing_in):
    filing_id = filing_in("under_review")
    decision = _propose(api, filing_id).get_json()
    before = _filing(api, filing_id)
    response = api("reviewer1").post(f"/api/v1/decisions/{decision['id']}/countersign")
    assert response.status_code == 403
    assert response.mimetype == "application/problem+json"
    assert "second reviewer" in response.get_json()["detail"]
    assert _filing(api, filing_id) == before
    assert api("reviewer1").get(f"/api/v1/decisions/{decision['id']}").get_json()["state"] == "proposed"


def test_a_second_reviewer_countersigns_and_the_decision_takes_effect_with_a_number(api, filing_in):
    filing_id = filing_in("under_review")
    decision = _propose(api, filing_id, outcome="approved_with_conditions", conditions=["Quarterly report"]).get_json()
    response = api("reviewer2").post(f"/api/v1/decisions/{decision['id']}/countersign")
    assert response.status_code == 200, response.get_json()
    signed = response.get_json()
    assert signed["state"] == "effective"
    assert signed["countersigned_by"] == "reviewer2" and signed["proposed_by"] == "reviewer1"
    assert signed["effective_at"] is not None
    assert NUMBER.match(signed["filing_number"])
    filing = _filing(api, filing_id)
    assert filing["state"] == "approved_with_conditions"
    assert filing["filing_number"] == signed["filing_number"]
    # Countersigning twice changes nothing.
    assert api("reviewer2").post(f"/api/v1/decisions/{decision['id']}/countersign").status_code == 409


@pytest.mark.parametrize("action", ["approve", "approve_with_conditions", "reject"])
def test_no_route_lets_one_reviewer_decide_a_high_risk_filing_alone(app, api, browser_as, filing_in, action):
    from tests.conftest import csrf_token

    filing_id = filing_in("under_review")
    reviewer = api("reviewer1")
    # The API's lifecycle route: decisions are not lifecycle actions.
    assert reviewer.post(f"/api/v1/filings/{filing_id}/actions/{action}", json={"reason": "r"}).status_code == 400
    # The page's lifecycle route.
    browser = browser_as("reviewer1")
    token = csrf_token(browser.get(f"/filings/{filing_id}").get_data(as_text=True))
    page = browser.post(f"/filings/{filing_id}/actions/{action}", data={"csrf_token": token, "reason": "r"})
    assert page.status_code == 404
    # The filing service itself, below the web.
    engine = app.extensions["registry"].engine
    with Session(engine) as s:
        with pytest.raises(Forbidden):
            filings.transition(session=s, actor=_actor(s, "reviewer1"), filing_id=filing_id, action=action, reason="r")
        s.rollback()
    # The decision service's own step, with a decision that only the proposer signed.
    with Session(engine) as s:
        reviewer1 = _actor(s, "reviewer1")
        decision = decisions.propose(
            session=s, actor=reviewer1, filing_id=filing_id, outcome="rejected", reasons=["r"], conditions=[]
        )
        with pytest.raises(Forbidden):
            filings.apply_decision(session=s, actor=reviewer1, filing=s.get(Filing, filing_id), decision=decision)
        decision.countersigned_by_id = reviewer1.user_id  # the proposer "countersigning" directly
        with pytest.raises(Forbidden):
            filings.apply_decision(session=s, actor=reviewer1, filing=s.get(Filing, filing_id), decision=decision)
        s.rollback()
    # Proposing on the page, and countersigning one's own proposal on the page.
    proposed = browser.post(f"/filings/{filing_id}/decisions", data={"csrf_token": token, "outcome": "approved"})
    assert proposed.status_code == 303
    decision_id = reviewer.get(f"/api/v1/filings/{filing_id}/decisions").get_json()["items"][0]["id"]
    own = browser.post(f"/decisions/{decision_id}/countersign", data={"csrf_token": token})
    assert own.status_code == 403
    assert reviewer.post(f"/api/v1/decisions/{decision_id}/countersign").status_code == 403
    filing = _filing(api, filing_id)
    assert filing["state"] == "under_review" and filing["filing_number"] is None


def test_at_most_one_open_proposal_and_a_withdrawn_one_allows_a_new_one(api, filing_in):
    filing_id = filing_in("under_review")
    first = _propose(api, filing_id).get_json()
    assert _propose(api, filing_id, user="reviewer2").status_code == 409
    refused = api("reviewer2").post(f"/api/v1/decisions/{first['id']}/withdraw", json={"reason": "Audit missing"})
    assert refused.status_code == 200
    assert refused.get_json()["state"] == "withdrawn"
    assert "Audit missing" in refused.get_json()["note"]
    assert _filing(api, filing_id)["state"] == "under_review"
    assert _propose(api, filing_id, user="reviewer2", outcome="rejected", reasons=["Bias"]).status_code == 201


def test_withdrawing_needs_a_reason(api, filing_in):
    filing_id = filing_in("under_review")
    decision = _propose(api, filing_id).get_json()
    response = api("reviewer1").post(f"/api/v1/decisions/{decision['id']}/withdraw", json={"reason": " "})
    assert response.status_code == 422
    assert response.get_json()["errors"][0]["pointer"] == "/reason"


# --- what a decision must say ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        ({"outcome": "approved_with_conditions"}, "/conditions"),
        ({"outcome": "approved_with_conditions", "conditions": ["  "]}, "/conditions"),
        ({"outcome": "rejected"}, "/reasons"),
        ({"outcome": "rejected", "reasons": [""]}, "/reasons"),
        ({"outcome": "rejected", "reasons": ["ok", 5]}, "/reasons/1"),
        ({"outcome": "maybe"}, "/outcome"),
        ({"outcome": "approved", "audit_job_ids": [999]}, "/audit_job_ids/0"),
    ],
)
def test_a_proposal_missing_what_its_outcome_needs_is_a_422_naming_the_field(api, filing_in, body, pointer):
    filing_id = filing_in("under_review")
    response = api("reviewer1").post(f"/api/v1/filings/{filing_id}/decisions", json=body)
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    assert [e["pointer"] for e in response.get_json()["errors"]] == [pointer]
    assert _filing(api, filing_id)["state"] == "under_review"


def _audit(session, filing_id, state="done", digest="a" * 64):
    filing = session.get(Filing, filing_id)
    if session.get(StoredFile, digest) is None:
        session.add(StoredFile(sha256=digest, size=1, media_type="application/json"))
        session.flush()
    job = AuditJob(
        filing_id=filing_id,
        state=state,
        dataset="adult-test",
        tier=filing.risk_tier or "IV",
        model_sha256=filing.model_sha256,
        report_sha256=digest if state == "done" else None,
    )
    session.add(job)
    session.commit()
    return job.id


def test_a_decision_cites_only_done_audits_of_its_own_filing_and_records_their_reports(app, api, filing_in):
    filing_id = filing_in("under_review")
    other_id = filing_in("under_review")
    with Session(app.extensions["registry"].engine) as s:
        done = _audit(s, filing_id, digest="b" * 64)
        running = _audit(s, filing_id, state="running")
        elsewhere = _audit(s, other_id, digest="c" * 64)
    for bad in (running, elsewhere):
        response = _propose(api, filing_id, audit_job_ids=[done, bad])
        assert response.status_code == 422
        assert response.get_json()["errors"][0]["pointer"] == "/audit_job_ids/1"
    decision = _propose(api, filing_id, audit_job_ids=[done]).get_json()
    assert decision["audit_job_ids"] == [done]
    assert decision["audit_report_sha256"] == ["b" * 64]


# --- who may do what ------------------------------------------------------------------------------------------------


def test_a_city_team_cannot_propose_or_countersign_but_reads_its_own_decisions(api, filing_in):
    filing_id = filing_in("under_review")
    city = api("zhengzhou")
    assert _propose(api, filing_id, user="zhengzhou").status_code == 403
    decision = _propose(api, filing_id, note="between reviewers").get_json()
    assert city.post(f"/api/v1/decisions/{decision['id']}/countersign").status_code == 403
    assert city.post(f"/api/v1/decisions/{decision['id']}/withdraw", json={"reason": "x"}).status_code == 403
    mine = city.get(f"/api/v1/decisions/{decision['id']}").get_json()
    assert mine["outcome"] == "approved"
    assert "note" not in mine  # reviewer-only
    assert [d["id"] for d in city.get(f"/api/v1/filings/{filing_id}/decisions").get_json()["items"]] == [decision["id"]]
    assert api("reviewer2").get(f"/api/v1/decisions/{decision['id']}").get_json()["note"] == "between reviewers"


def test_another_city_gets_404(api, filing_in):
    filing_id = filing_in("under_review")
    decision = _propose(api, filing_id).get_json()
    other = api("luoyang")
    assert other.get(f"/api/v1/decisions/{decision['id']}").status_code == 404
    assert other.get(f"/api/v1/filings/{filing_id}/decisions").status_code == 404


def test_a_decision_on_a_filing_not_under_review_is_refused(api, filing_in):
    response = _propose(api, filing_in("submitted"))
    assert response.status_code == 409
    assert response.get_json()["current_state"] == "submitted"


def test_a_proposal_goes_stale_when_the_filing_is_sent_back(api, filing_in):
    filing_id = filing_in("under_review")
    decision = _propose(api, filing_id).get_json()
    sent_back = api("reviewer1").post(f"/api/v1/filings/{filing_id}/actions/request_changes", json={"reason": "r"})
    assert sent_back.status_code == 200
    assert api("reviewer2").post(f"/api/v1/decisions/{decision['id']}/countersign").status_code == 409
    assert _filing(api, filing_id)["state"] == "changes_requested"


def test_a_proposal_retried_with_the_same_idempotency_key_files_one_decision(api, filing_in):
    filing_id = filing_in("under_review")
    reviewer = api("reviewer1")
    headers = {"Idempotency-Key": "decide-1"}
    first = reviewer.post(f"/api/v1/filings/{filing_id}/decisions", json={"outcome": "approved"}, headers=headers)
    again = reviewer.post(f"/api/v1/filings/{filing_id}/decisions", json={"outcome": "approved"}, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert len(reviewer.get(f"/api/v1/filings/{filing_id}/decisions").get_json()["items"]) == 1


# --- suspend, revoke, and numbers never reused ----------------------------------------------------------------------


@pytest.mark.parametrize("action", ["suspend", "revoke"])
def test_a_reviewer_suspends_or_revokes_with_a_reason_and_a_city_team_cannot(api, filing_in, action):
    filing_id = filing_in("approved")
    url = f"/api/v1/filings/{filing_id}/actions/{action}"
    assert api("zhengzhou").post(url, json={"reason": "x"}).status_code == 403
    missing = api("reviewer1").post(url, json={})
    assert missing.status_code == 422
    assert missing.get_json()["errors"][0]["pointer"] == "/reason"
    done = api("reviewer1").post(url, json={"reason": "Re-audit found drift"})
    assert done.status_code == 200
    assert done.get_json()["state"] == {"suspend": "suspended", "revoke": "revoked"}[action]
    history = api("zhengzhou").get(f"/api/v1/filings/{filing_id}/history").get_json()["items"]
    assert history[-1]["reason"] == "Re-audit found drift"


def test_a_revoked_filings_number_is_never_reused(api, filing_in):
    first_id = filing_in("approved")
    first = _filing(api, first_id)["filing_number"]
    assert api("reviewer1").post(f"/api/v1/filings/{first_id}/actions/revoke", json={"reason": "x"}).status_code == 200
    second_id = filing_in("under_review")
    decision = _propose(api, second_id).get_json()
    second = api("reviewer2").post(f"/api/v1/decisions/{decision['id']}/countersign").get_json()["filing_number"]
    assert _filing(api, first_id)["filing_number"] == first  # the revoked filing keeps its number
    assert second != first
    assert second[:-4] == first[:-4]  # same city and year
    assert int(second[-4:]) == int(first[-4:]) + 1


def test_the_demo_walks_decisions_through_the_decisions_service(app, filing_in):
    filing_id = filing_in("rejected")
    with Session(app.extensions["registry"].engine) as s:
        items = decisions.list_for_filing(session=s, actor=_actor(s, "reviewer1"), filing_id=filing_id)
        history = filings.history(session=s, filing=s.get(Filing, filing_id))
    assert [(d.outcome, d.state) for d in items] == [("rejected", "effective")]
    assert items[0].countersigned_by_id is not None  # tier III: four eyes
    assert history[-1].to_state == "rejected" and history[-1].actor_role == "reviewer"
