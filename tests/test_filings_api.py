"""A city team files an algorithm end to end through the REST API, and sees exactly its own city's filings."""

import copy
import hashlib
import io
import re

import pytest

from registry.demo import tiny_model_bytes


def create(client, documents, **extra):
    body = {"technical_document": documents.technical_document, "test_report": documents.test_report, **extra}
    return client.post("/api/v1/filings", json=body)


def upload_model(client, filing_id, data=None, name="model.onnx"):
    return client.post(
        f"/api/v1/filings/{filing_id}/attachments",
        data={"kind": "model", "file": (io.BytesIO(data if data is not None else tiny_model_bytes()), name)},
        content_type="multipart/form-data",
    )


def test_a_city_team_files_and_submits_an_algorithm_end_to_end(api, documents):
    city = api("zhengzhou")
    created = create(city, documents)
    assert created.status_code == 201, created.get_json()
    filing = created.get_json()
    assert created.headers["Location"].endswith(f"/api/v1/filings/{filing['id']}")
    assert filing["state"] == "draft"
    assert filing["city_code"] == "410100"
    assert filing["algorithm"]["name_zh"] == documents.technical_document["algorithm"]["name_zh"]
    assert filing["risk_tier"] in {"I", "II", "III", "IV"}
    assert "submit" in filing["allowed_actions"]

    uploaded = upload_model(city, filing["id"])
    assert uploaded.status_code == 201, uploaded.get_json()
    assert uploaded.get_json()["sha256"] == hashlib.sha256(tiny_model_bytes()).hexdigest()

    submitted = city.post(f"/api/v1/filings/{filing['id']}/submit")
    assert submitted.status_code == 200, submitted.get_json()
    assert submitted.get_json()["state"] == "submitted"
    assert submitted.get_json()["model_sha256"] == uploaded.get_json()["sha256"]

    history = city.get(f"/api/v1/filings/{filing['id']}/history").get_json()["items"]
    assert [(h["from_state"], h["to_state"]) for h in history] == [(None, "draft"), ("draft", "submitted")]
    assert all(h["actor_role"] == "city" for h in history)

    # The reviewer now sees it in the queue.
    reviewer = api("reviewer1")
    ids = [f["id"] for f in reviewer.get("/api/v1/filings?state=submitted").get_json()["items"]]
    assert filing["id"] in ids


def test_a_city_team_lists_only_its_own_citys_filings(api, filing_in):
    own = {filing_in("draft"), filing_in("submitted")}
    other = {filing_in("draft", city_user="luoyang"), filing_in("under_review", city_user="luoyang")}
    listed = api("zhengzhou").get("/api/v1/filings").get_json()
    assert {f["id"] for f in listed["items"]} == own
    assert listed["total"] == 2
    assert {f["id"] for f in api("luoyang").get("/api/v1/filings").get_json()["items"]} == other


def test_another_citys_filing_does_not_exist_for_a_city_team(api, filing_in):
    other = filing_in("submitted", city_user="luoyang")
    for method, url in [
        ("GET", f"/api/v1/filings/{other}"),
        ("GET", f"/api/v1/filings/{other}/history"),
        ("GET", f"/api/v1/filings/{other}/comments"),
        ("POST", f"/api/v1/filings/{other}/actions/withdraw"),
    ]:
        response = api("zhengzhou").open(method, url)
        assert response.status_code == 404, (method, url)
        assert response.mimetype == "application/problem+json"


def test_reviewers_see_submitted_filings_but_never_drafts(api, filing_in):
    draft = filing_in("draft")
    submitted = filing_in("submitted")
    listed = {f["id"] for f in api("reviewer1").get("/api/v1/filings").get_json()["items"]}
    assert submitted in listed and draft not in listed
    assert api("reviewer1").get(f"/api/v1/filings/{draft}").status_code == 404


def test_list_is_paginated_with_a_total(api, filing_in):
    ids = {filing_in("draft") for _ in range(3)}
    first = api("zhengzhou").get("/api/v1/filings?per_page=2&page=1").get_json()
    second = api("zhengzhou").get("/api/v1/filings?per_page=2&page=2").get_json()
    assert first["total"] == second["total"] == 3
    assert len(first["items"]) == 2 and len(second["items"]) == 1
    assert {f["id"] for f in first["items"] + second["items"]} == ids


def test_state_filter(api, filing_in):
    filing_in("draft")
    submitted = filing_in("submitted")
    listed = api("zhengzhou").get("/api/v1/filings?state=submitted").get_json()
    assert [f["id"] for f in listed["items"]] == [submitted]


def test_changes_requested_then_resubmitted_keeps_the_whole_history_and_the_thread(api, filing_in, documents):
    filing_id = filing_in("under_review")
    reviewer, city = api("reviewer1"), api("zhengzhou")
    asked = reviewer.post(f"/api/v1/filings/{filing_id}/actions/request_changes", json={"reason": "请补充分组结果"})
    assert asked.status_code == 200 and asked.get_json()["state"] == "changes_requested"
    assert reviewer.post(f"/api/v1/filings/{filing_id}/comments", json={"body": "见第三节"}).status_code == 201
    assert (
        reviewer.post(
            f"/api/v1/filings/{filing_id}/comments", json={"body": "内部备注", "reviewer_only": True}
        ).status_code
        == 201
    )

    thread = city.get(f"/api/v1/filings/{filing_id}/comments").get_json()["items"]
    assert [c["body"] for c in thread] == ["见第三节"]  # the reviewer-only note stays with reviewers
    assert city.post(f"/api/v1/filings/{filing_id}/comments", json={"body": "已补充"}).status_code == 201

    report = copy.deepcopy(documents.test_report)
    assert city.patch(f"/api/v1/filings/{filing_id}", json={"test_report": report}).status_code == 200
    resubmitted = city.post(f"/api/v1/filings/{filing_id}/actions/resubmit")
    assert resubmitted.status_code == 200 and resubmitted.get_json()["state"] == "resubmitted"

    steps = [(h["action"], h["to_state"]) for h in city.get(f"/api/v1/filings/{filing_id}/history").get_json()["items"]]
    assert steps == [
        ("create", "draft"),
        ("submit", "submitted"),
        ("start_review", "under_review"),
        ("request_changes", "changes_requested"),
        ("resubmit", "resubmitted"),
    ]
    reviewer_thread = reviewer.get(f"/api/v1/filings/{filing_id}/comments").get_json()["items"]
    assert [c["body"] for c in reviewer_thread] == ["见第三节", "内部备注", "已补充"]


def test_a_city_team_cannot_write_a_reviewer_only_note(api, filing_in):
    filing_id = filing_in("submitted")
    response = api("zhengzhou").post(f"/api/v1/filings/{filing_id}/comments", json={"body": "x", "reviewer_only": True})
    assert response.status_code == 403


def test_a_new_version_supersedes_the_approved_one_when_it_is_approved(api, app, filing_in, documents):
    from sqlmodel import Session

    from registry.accounts import service as accounts
    from registry.decisions import service as decisions

    old = filing_in("approved")
    city = api("zhengzhou")
    newer = copy.deepcopy(documents.technical_document)
    newer["algorithm"]["version"] = "2.0"
    created = city.post(
        "/api/v1/filings",
        json={"technical_document": newer, "test_report": documents.test_report, "supersedes_filing_id": old},
    )
    assert created.status_code == 201, created.get_json()
    new_id = created.get_json()["id"]
    assert created.get_json()["supersedes_filing_id"] == old
    assert upload_model(city, new_id).status_code == 201
    assert city.post(f"/api/v1/filings/{new_id}/submit").status_code == 200
    assert api("reviewer1").post(f"/api/v1/filings/{new_id}/actions/start_review").status_code == 200
    with Session(app.extensions["registry"].engine) as s:
        first, second = (
            accounts.actor_for(accounts.get_user_by_name(session=s, username=name))
            for name in ("reviewer1", "reviewer2")
        )
        decision = decisions.propose(session=s, actor=first, filing_id=new_id, outcome="approved")
        if decision.state == "proposed":  # tiers III and IV: four eyes
            decisions.countersign(session=s, actor=second, decision_id=decision.id)
        s.commit()
    assert city.get(f"/api/v1/filings/{old}").get_json()["state"] == "superseded"
    approved = city.get(f"/api/v1/filings/{new_id}").get_json()
    assert approved["state"] == "approved"
    old_number = city.get(f"/api/v1/filings/{old}").get_json()["filing_number"]
    assert approved["filing_number"] != old_number


@pytest.mark.parametrize("state", ["draft", "changes_requested"])
def test_documents_can_be_edited_while_the_city_holds_the_filing(api, filing_in, documents, state):
    filing_id = filing_in(state)
    document = copy.deepcopy(documents.technical_document)
    document["department"] = "新部门"
    response = api("zhengzhou").patch(f"/api/v1/filings/{filing_id}", json={"technical_document": document})
    assert response.status_code == 200
    assert response.get_json()["technical_document"]["department"] == "新部门"


@pytest.mark.parametrize("state", ["submitted", "under_review", "approved"])
def test_documents_and_model_are_frozen_once_submitted(api, filing_in, documents, state):
    filing_id = filing_in(state)
    city = api("zhengzhou")
    before = city.get(f"/api/v1/filings/{filing_id}").get_json()
    edit = city.patch(f"/api/v1/filings/{filing_id}", json={"technical_document": documents.technical_document})
    assert edit.status_code == 409
    assert edit.get_json()["current_state"] == state
    upload = upload_model(city, filing_id, tiny_model_bytes(seed=0.9))
    assert upload.status_code == 409
    after = city.get(f"/api/v1/filings/{filing_id}").get_json()
    assert after["model_sha256"] == before["model_sha256"]
    assert after["updated_at"] == before["updated_at"]


def test_the_risk_tier_and_how_it_was_scored_are_stored_and_returned(api, documents):
    created = create(api("zhengzhou"), documents).get_json()
    assessment = created["risk_assessment"]
    assert assessment["tier"] == created["risk_tier"]
    assert {"raw_score", "max_raw_score", "mitigation_applied", "breakdown"} <= set(assessment)
    answered = documents.technical_document["impact_assessment"]["answers"]
    assert {row["question_id"]: row["answer"] for row in assessment["breakdown"]} == answered


def test_filing_numbers_follow_the_format_and_never_repeat(api, filing_in):
    numbers = [
        api("zhengzhou").get(f"/api/v1/filings/{filing_in('approved')}").get_json()["filing_number"] for _ in range(3)
    ]
    for number in numbers:
        assert re.fullmatch(r"豫算备410100-\d{4}-\d{4}", number)
    assert len(set(numbers)) == 3
    assert [int(n[-4:]) for n in numbers] == sorted(int(n[-4:]) for n in numbers)
