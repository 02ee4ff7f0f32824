"""The decision letter as PDF: a real PDF (read back with pypdf) that says what the HTML letter says, in the
reader's language, for the same people as the HTML letter, and only for an effective decision."""

from __future__ import annotations

import io
import re

import pytest
from pypdf import PdfReader

from tests.conftest import csrf_token

NUMBER = re.compile(r"豫算备410100-\d{4}-\d{4}")
ALGORITHM_ZH = "最低生活保障资格认定辅助模型"  # the Zhengzhou demo filing's name
CONDITION = "每季度报送分组准确率。Report per-group accuracy every quarter."  # demo.PATHS
REASON = "女性申请人的通过率低于男性的 80%。Selection rate for women is below 80% of men's."


def _decision(api, filing_id: int) -> dict:
    (decision,) = api("reviewer1").get(f"/api/v1/filings/{filing_id}/decisions").get_json()["items"]
    return decision


def _pdf_text(response) -> str:
    """The text of every page, with the line breaks and spaces the layout adds taken out."""
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    assert response.mimetype == "application/pdf"
    body = response.get_data()
    assert body.startswith(b"%PDF-")
    reader = PdfReader(io.BytesIO(body))
    assert len(reader.pages) >= 1
    return _squash("".join(page.extract_text() for page in reader.pages))


def _squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


def test_the_pdf_letter_of_an_approval_with_conditions_says_it_all_in_chinese(api, browser_as, filing_in):
    filing_id = filing_in("approved_with_conditions")
    decision = _decision(api, filing_id)
    text = _pdf_text(browser_as("zhengzhou").get(f"/decisions/{decision['id']}/letter.pdf"))
    assert decision["filing_number"] and NUMBER.fullmatch(decision["filing_number"])
    assert decision["filing_number"] in text
    assert ALGORITHM_ZH in text
    assert "附条件批准" in text  # the outcome, in the default language
    assert "附加条件" in text and _squash(CONDITION) in text
    assert decision["proposed_at"][:10] in text and decision["effective_at"][:10] in text
    assert "reviewer1" not in text and "reviewer2" not in text  # roles, not people


def test_the_pdf_letter_follows_the_language_asked_for(api, browser_as, filing_in):
    filing_id = filing_in("approved_with_conditions")
    decision_id = _decision(api, filing_id)["id"]
    city = browser_as("zhengzhou")
    english = _pdf_text(city.get(f"/decisions/{decision_id}/letter.pdf?lang=en"))
    assert "Approvedwithconditions" in english and "Conditions" in english
    assert ALGORITHM_ZH in english  # the Chinese name stays in an English letter
    # the language switch (a cookie) works as well as ?lang=
    city.post("/language", data={"lang": "en", "csrf_token": csrf_token(city.get("/filings").get_data(as_text=True))})
    assert "Approvedwithconditions" in _pdf_text(city.get(f"/decisions/{decision_id}/letter.pdf"))
    api_english = _pdf_text(api("zhengzhou").get(f"/api/v1/decisions/{decision_id}/letter.pdf?lang=en"))
    assert "Approvedwithconditions" in api_english


def test_a_rejection_letter_gives_the_reasons_and_no_number(api, browser_as, filing_in):
    filing_id = filing_in("rejected")
    decision = _decision(api, filing_id)
    assert decision["filing_number"] is None
    text = _pdf_text(browser_as("reviewer1").get(f"/decisions/{decision['id']}/letter.pdf"))
    assert "未获批准" in text and "理由" in text and _squash(REASON) in text
    assert not NUMBER.search(text)


def test_the_html_and_the_pdf_letter_say_the_same_thing(api, browser_as, filing_in):
    filing_id = filing_in("approved_with_conditions")
    decision_id = _decision(api, filing_id)["id"]
    city = browser_as("zhengzhou")
    html = city.get(f"/decisions/{decision_id}/letter").get_data(as_text=True)
    pdf = _pdf_text(city.get(f"/decisions/{decision_id}/letter.pdf"))
    facts = re.findall(r"<dt>(.*?)</dt><dd[^>]*>(.*?)</dd>", html, flags=re.S)
    assert len(facts) == 6
    headings = re.findall(r"<h[12][^>]*>(.*?)</h[12]>", html)
    items = re.findall(r"<li>(.*?)</li>", html, flags=re.S)
    for fragment in [label for label, _ in facts] + [value for _, value in facts] + headings + items:
        plain = _squash(re.sub(r"<[^>]+>", "", fragment)).replace("&#39;", "'").replace("&amp;", "&")
        assert plain in pdf, plain


def test_the_letter_links_to_its_pdf_and_so_does_the_filing_page(api, browser_as, filing_in):
    filing_id = filing_in("approved")
    decision_id = _decision(api, filing_id)["id"]
    city = browser_as("zhengzhou")
    assert f'href="/decisions/{decision_id}/letter.pdf"' in city.get(f"/decisions/{decision_id}/letter").get_data(
        as_text=True
    )
    assert f'href="/decisions/{decision_id}/letter.pdf"' in city.get(f"/filings/{filing_id}").get_data(as_text=True)


@pytest.mark.parametrize("url", ["/decisions/{id}/letter.pdf", "/decisions/{id}/letter"])
def test_the_pdf_is_for_the_same_readers_as_the_html_letter(api, app, browser_as, filing_in, url):
    filing_id = filing_in("approved")
    decision_id = _decision(api, filing_id)["id"]
    address = url.format(id=decision_id)
    for who in ("zhengzhou", "reviewer1", "reviewer2", "admin"):
        assert browser_as(who).get(address).status_code == 200, who
    assert browser_as("luoyang").get(address).status_code == 404  # another city's decision does not exist for it
    anonymous = app.test_client().get(address)
    assert anonymous.status_code == 302 and "/login" in anonymous.headers["Location"]


def test_the_api_pdf_letter_is_for_the_filings_readers_only(api, app, filing_in):
    filing_id = filing_in("approved")
    decision_id = _decision(api, filing_id)["id"]
    address = f"/api/v1/decisions/{decision_id}/letter.pdf"
    for who in ("zhengzhou", "reviewer1", "admin"):
        _pdf_text(api(who).get(address))
    other = api("luoyang").get(address)
    assert other.status_code == 404 and other.mimetype == "application/problem+json"
    assert api(None).get(address).status_code == 401
    assert api("zhengzhou").get("/api/v1/decisions/999999/letter.pdf").status_code == 404


def test_a_decision_that_is_not_effective_has_no_pdf_letter(api, browser_as, filing_in):
    filing_id = filing_in("under_review")
    proposed = api("reviewer1").post(f"/api/v1/filings/{filing_id}/decisions", json={"outcome": "approved"}).get_json()
    assert proposed["state"] == "proposed"  # the demo filing is high risk: it waits for a countersignature
    assert browser_as("reviewer1").get(f"/decisions/{proposed['id']}/letter.pdf").status_code == 409
    answer = api("zhengzhou").get(f"/api/v1/decisions/{proposed['id']}/letter.pdf")
    assert answer.status_code == 409 and answer.mimetype == "application/problem+json"
    assert answer.get_json()["type"].endswith("decision_not_effective")
