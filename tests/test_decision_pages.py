"""Decisions on the filing page and the decision letter, as reviewers and city teams use them in a browser."""

import re

import pytest

from tests.conftest import csrf_token

NUMBER = re.compile(r"豫算备410100-\d{4}-\d{4}")


@pytest.fixture
def browser_as(browser_as):
    """Logged-in browsers reading English (the registry's default is Chinese), so the tests can quote the page."""

    def make(username):
        client = browser_as(username)
        client.set_cookie("lang", "en")
        return client

    return make


def _page(browser, filing_id):
    response = browser.get(f"/filings/{filing_id}")
    assert response.status_code == 200
    return response.get_data(as_text=True)


def _post(browser, url, filing_id, **data):
    data["csrf_token"] = csrf_token(_page(browser, filing_id))
    return browser.post(url, data=data)


def _decision_ids(api, filing_id):
    return [d["id"] for d in api("reviewer1").get(f"/api/v1/filings/{filing_id}/decisions").get_json()["items"]]


def test_two_reviewers_take_a_high_risk_filing_to_a_number_on_the_pages(api, browser_as, filing_in):
    filing_id = filing_in("under_review")
    first, second = browser_as("reviewer1"), browser_as("reviewer2")
    page = _page(first, filing_id)
    assert 'id="propose-form"' in page and 'name="outcome"' in page

    proposed = _post(
        first,
        f"/filings/{filing_id}/decisions",
        filing_id,
        outcome="approved_with_conditions",
        conditions="Report per-group accuracy every quarter\n\nKeep a human in the loop",
    )
    assert proposed.status_code == 303
    (decision_id,) = _decision_ids(api, filing_id)
    page = _page(first, filing_id)
    assert "Report per-group accuracy every quarter" in page and "Keep a human in the loop" in page
    assert f'id="countersign-{decision_id}"' not in page  # the proposer gets no countersign button
    assert 'id="propose-form"' not in page  # one open proposal at a time
    assert 'state-under_review" id="filing-state"' in page

    page = _page(second, filing_id)
    assert f'id="countersign-{decision_id}"' in page
    assert "Refuse to countersign" in page
    signed = _post(second, f"/decisions/{decision_id}/countersign", filing_id)
    assert signed.status_code == 303
    page = _page(second, filing_id)
    number = NUMBER.search(page).group(0)
    assert 'state-approved_with_conditions" id="filing-state"' in page
    assert f"/decisions/{decision_id}/letter" in page

    letter = browser_as("zhengzhou").get(f"/decisions/{decision_id}/letter")
    assert letter.status_code == 200
    text = letter.get_data(as_text=True)
    assert number in text and "Approved with conditions" in text
    assert "Report per-group accuracy every quarter" in text
    assert "reviewer1" not in text and "reviewer2" not in text  # roles, not people
    assert "countersigned by a second provincial reviewer" in text


def test_the_letter_is_in_the_readers_language(api, browser_as, filing_in):
    filing_id = filing_in("approved")
    (decision_id,) = _decision_ids(api, filing_id)
    city = browser_as("zhengzhou")
    city.post("/language", data={"lang": "zh_CN", "csrf_token": csrf_token(_page(city, filing_id))})
    text = city.get(f"/decisions/{decision_id}/letter").get_data(as_text=True)
    assert '<html lang="zh-CN">' in text
    assert NUMBER.search(text)


def test_a_proposal_missing_its_conditions_is_shown_on_the_page_not_a_500(browser_as, filing_in):
    filing_id = filing_in("under_review")
    reviewer = browser_as("reviewer1")
    response = _post(reviewer, f"/filings/{filing_id}/decisions", filing_id, outcome="approved_with_conditions")
    assert response.status_code == 422
    text = response.get_data(as_text=True)
    assert 'id="decision-error-summary"' in text
    assert 'id="decision-conditions" name="conditions" rows="3" aria-invalid="true"' in text
    assert 'value="approved_with_conditions" required checked' in text  # what was entered is kept


def test_the_proposer_countersigning_on_the_page_is_refused_with_a_message(api, browser_as, filing_in):
    filing_id = filing_in("under_review")
    reviewer = browser_as("reviewer1")
    _post(reviewer, f"/filings/{filing_id}/decisions", filing_id, outcome="approved")
    (decision_id,) = _decision_ids(api, filing_id)
    response = _post(reviewer, f"/decisions/{decision_id}/countersign", filing_id)
    assert response.status_code == 403
    assert "second reviewer must countersign" in response.get_data(as_text=True)
    assert 'state-under_review" id="filing-state"' in response.get_data(as_text=True)


def test_a_refusal_needs_a_reason_and_then_the_filing_stays_under_review(api, browser_as, filing_in):
    filing_id = filing_in("under_review")
    _post(browser_as("reviewer1"), f"/filings/{filing_id}/decisions", filing_id, outcome="approved")
    (decision_id,) = _decision_ids(api, filing_id)
    second = browser_as("reviewer2")
    blank = _post(second, f"/decisions/{decision_id}/withdraw", filing_id, reason="")
    assert blank.status_code == 422
    assert f'id="withdraw-{decision_id}-error"' in blank.get_data(as_text=True)
    refused = _post(second, f"/decisions/{decision_id}/withdraw", filing_id, reason="No audit yet")
    assert refused.status_code == 303
    page = _page(second, filing_id)
    assert 'state-under_review" id="filing-state"' in page and 'id="propose-form"' in page


def test_a_city_team_sees_its_decisions_but_no_forms_and_no_notes(api, browser_as, filing_in):
    filing_id = filing_in("under_review")
    created = api("reviewer1").post(
        f"/api/v1/filings/{filing_id}/decisions", json={"outcome": "approved", "note": "internal remark"}
    )
    assert created.status_code == 201
    page = _page(browser_as("zhengzhou"), filing_id)
    assert "Decision " in page and "Proposed, awaiting countersignature" in page
    assert "internal remark" not in page
    assert 'id="propose-form"' not in page and "countersign-" not in page
    assert browser_as("luoyang").get(f"/decisions/{created.get_json()['id']}/letter").status_code == 404


def test_a_letter_exists_only_for_an_effective_decision(api, browser_as, filing_in):
    filing_id = filing_in("under_review")
    decision = api("reviewer1").post(f"/api/v1/filings/{filing_id}/decisions", json={"outcome": "approved"}).get_json()
    assert browser_as("reviewer1").get(f"/decisions/{decision['id']}/letter").status_code == 409


def test_a_reviewer_suspends_an_approved_filing_on_its_page_with_a_reason(browser_as, filing_in):
    filing_id = filing_in("approved")
    reviewer = browser_as("reviewer1")
    page = _page(reviewer, filing_id)
    assert 'id="action-suspend-button"' in page and 'id="action-revoke-button"' in page
    assert 'id="action-suspend-button"' not in _page(browser_as("zhengzhou"), filing_id)
    done = _post(reviewer, f"/filings/{filing_id}/actions/suspend", filing_id, reason="Data drift")
    assert done.status_code == 303
    assert 'state-suspended" id="filing-state"' in _page(reviewer, filing_id)
