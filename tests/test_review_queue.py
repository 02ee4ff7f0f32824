"""The reviewer's queue: filings filtered by state, city, scenario and risk tier, with how long each has waited in
its current state, longest waiting first; on the page (/filings) and in the API (GET /api/v1/filings)."""

from __future__ import annotations

import copy
import re
from datetime import timedelta

import pytest
import sqlalchemy as sa

from registry import demo
from registry.db import utcnow

ZHENGZHOU, LUOYANG = "410100", "410300"
ROW_LINK = re.compile(r'<th scope="row"><a href="/filings/(\d+)">')


def _document(index: int, city: str) -> tuple[dict, dict]:
    """A demo technical document and test report, filed as ``city`` (its scenario and tier are the demo's)."""
    technical, reports = demo.documents()
    document = copy.deepcopy(technical[index])
    document["city_code"] = city
    return document, copy.deepcopy(reports[index])


# demo.documents(): 0 eligibility_determination tier III, 1 credit_evaluation IV, 3 licence_approval I,
# 7 eligibility_determination II.
@pytest.fixture
def queue(filing_in):
    """Filings of two cities, three scenarios and four tiers, in review states, and a draft reviewers never see."""

    def file(state, index, city_user):
        document, report = _document(index, ZHENGZHOU if city_user == "zhengzhou" else LUOYANG)
        return filing_in(state, city_user=city_user, document=document, report=report)

    return {
        "zz_eligibility_iii": file("submitted", 0, "zhengzhou"),
        "zz_credit_iv": file("under_review", 1, "zhengzhou"),
        "ly_licence_i": file("submitted", 3, "luoyang"),
        "ly_eligibility_ii": file("resubmitted", 7, "luoyang"),
        "zz_draft": file("draft", 1, "zhengzhou"),
    }


def _api_ids(api, who: str, query: str = "") -> list[int]:
    response = api(who).get(f"/api/v1/filings{query}")
    assert response.status_code == 200, response.get_json()
    return [f["id"] for f in response.get_json()["items"]]


def _page_ids(browser, query: str = "") -> list[int]:
    response = browser.get(f"/filings{query}")
    assert response.status_code == 200
    return [int(i) for i in ROW_LINK.findall(response.get_data(as_text=True))]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", {"zz_eligibility_iii", "zz_credit_iv", "ly_licence_i", "ly_eligibility_ii"}),
        ("?state=submitted", {"zz_eligibility_iii", "ly_licence_i"}),
        (f"?city={LUOYANG}", {"ly_licence_i", "ly_eligibility_ii"}),
        ("?scenario=eligibility_determination", {"zz_eligibility_iii", "ly_eligibility_ii"}),
        ("?tier=IV", {"zz_credit_iv"}),
        ("?tier=I", {"ly_licence_i"}),
        (f"?city={ZHENGZHOU}&scenario=credit_evaluation", {"zz_credit_iv"}),
        (f"?city={LUOYANG}&tier=II&state=resubmitted&scenario=eligibility_determination", {"ly_eligibility_ii"}),
        (f"?city={LUOYANG}&tier=IV", set()),
    ],
)
def test_each_filter_narrows_the_reviewers_queue(api, browser_as, queue, query, expected):
    wanted = {queue[name] for name in expected}
    listed = _api_ids(api, "reviewer1", query)
    assert set(listed) == wanted and len(listed) == len(wanted)
    assert api("reviewer1").get(f"/api/v1/filings{query}").get_json()["total"] == len(wanted)
    assert set(_page_ids(browser_as("reviewer1"), query)) == wanted


def test_the_page_says_when_nothing_matches(browser_as, queue):
    html = browser_as("reviewer1").get(f"/filings?city={LUOYANG}&tier=IV").get_data(as_text=True)
    assert "没有符合这些筛选条件的备案" in html


def test_a_city_team_cannot_widen_its_view_with_the_city_filter(api, browser_as, queue):
    own = {queue["zz_eligibility_iii"], queue["zz_credit_iv"], queue["zz_draft"]}
    assert set(_api_ids(api, "zhengzhou")) == own
    assert _api_ids(api, "zhengzhou", f"?city={LUOYANG}") == []
    assert _api_ids(api, "zhengzhou", f"?city={LUOYANG}&state=submitted&tier=I") == []
    assert set(_api_ids(api, "zhengzhou", f"?city={ZHENGZHOU}")) == own
    city = browser_as("zhengzhou")
    assert _page_ids(city, f"?city={LUOYANG}") == []
    assert set(_page_ids(city, "?tier=IV")) == {queue["zz_credit_iv"], queue["zz_draft"]}
    assert set(_api_ids(api, "luoyang", f"?city={ZHENGZHOU}")) == set()
    html = city.get("/filings").get_data(as_text=True)
    assert 'id="city"' not in html  # a city team's list is its own city's: no city to choose


def test_the_queue_is_longest_waiting_first_counted_from_entering_the_current_state(api, browser_as, filing_in):
    approved = filing_in("approved")  # decided first of all, but waits for nobody
    first = filing_in("submitted")
    second = filing_in("submitted")
    reviewer = api("reviewer1")
    # Starting the review of ``first`` now makes it the latest arrival in its state, though it was filed first.
    assert reviewer.post(f"/api/v1/filings/{first}/actions/start_review").status_code == 200
    answer = reviewer.get("/api/v1/filings").get_json()
    assert answer["sort"] == "waiting"  # the reviewers' default
    assert [f["id"] for f in answer["items"]] == [second, first, approved]
    for item in answer["items"]:
        history = reviewer.get(f"/api/v1/filings/{item['id']}/history").get_json()["items"]
        assert item["in_state_since"] == history[-1]["at"]
    assert _api_ids(api, "reviewer1", "?sort=-waiting") == [first, second, approved]
    assert _api_ids(api, "reviewer1", "?sort=updated") == [first, second, approved]
    assert _page_ids(browser_as("reviewer1")) == [second, first, approved]
    assert _page_ids(browser_as("reviewer1"), "?sort=-waiting") == [first, second, approved]
    assert api("zhengzhou").get("/api/v1/filings").get_json()["sort"] == "updated"  # the city teams' default


def test_the_page_shows_how_long_each_filing_has_waited(browser_as, filing_in, monkeypatch):
    filing_in("submitted")
    later = utcnow() + timedelta(days=3, hours=5)
    monkeypatch.setattr("registry.filings.views.utcnow", lambda: later)
    html = browser_as("reviewer1").get("/filings").get_data(as_text=True)
    assert '<time datetime="P3D"' in html and "3 天" in html
    client = browser_as("reviewer1")
    client.set_cookie("lang", "en")
    assert "3 days" in client.get("/filings").get_data(as_text=True)
    monkeypatch.setattr("registry.filings.views.utcnow", lambda: later - timedelta(days=3))
    assert '<time datetime="PT5H"' in browser_as("reviewer1").get("/filings").get_data(as_text=True)


def test_the_filter_form_is_a_labelled_get_form_that_keeps_the_choices(browser_as, queue):
    html = browser_as("reviewer1").get(f"/filings?city={LUOYANG}&tier=II&sort=-waiting").get_data(as_text=True)
    form = re.search(r'<form method="get" action="/filings"[^>]*>(.*?)</form>', html, flags=re.S).group(1)
    for name in ("state", "city", "scenario", "tier", "sort"):
        assert f'<label for="{name}">' in form and f'<select id="{name}" name="{name}">' in form
    assert f'<option value="{LUOYANG}" selected>' in form
    assert '<option value="II" selected>' in form and '<option value="-waiting" selected>' in form
    assert "csrf_token" not in form  # a plain GET: the address is the filtered list


def test_unknown_filter_values_are_ignored_on_the_page(browser_as, queue):
    everything = set(_page_ids(browser_as("reviewer1")))
    assert set(_page_ids(browser_as("reviewer1"), "?tier=V&city=999999&scenario=astrology&sort=x")) == everything
    assert set(_page_ids(browser_as("reviewer1"), "?tier=V&state=submitted")) == {
        queue["zz_eligibility_iii"],
        queue["ly_licence_i"],
    }


@pytest.mark.parametrize(
    ("query", "pointers"),
    [
        ("city=999999", {"/query/city"}),
        ("scenario=astrology", {"/query/scenario"}),
        ("tier=V", {"/query/tier"}),
        ("state=flying", {"/query/state"}),
        ("sort=random", {"/query/sort"}),
        ("tier=iv&city=410100&scenario=other&state=", {"/query/tier", "/query/state"}),
    ],
)
def test_an_unknown_filter_value_in_the_api_is_a_422_naming_the_parameter(api, query, pointers):
    response = api("reviewer1").get(f"/api/v1/filings?{query}")
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert body["type"].endswith("bad_filter")
    assert {e["pointer"] for e in body["errors"]} == pointers
    assert all(e["detail"] and e["detail_zh"] for e in body["errors"])


def test_the_waiting_time_costs_no_query_per_filing(api, engine, filing_in):
    """How long each filing has waited comes with the list's own query, not one more query per row."""
    client = api("reviewer1")

    def statements_for_list() -> int:
        seen = []

        def count(conn, cursor, statement, *args):
            seen.append(statement)

        sa.event.listen(engine, "before_cursor_execute", count)
        try:
            assert client.get("/api/v1/filings").status_code == 200
        finally:
            sa.event.remove(engine, "before_cursor_execute", count)
        return len(seen)

    filing_in("submitted")
    statements_for_list()  # the token's first use is recorded (an UPDATE); the next ones within the minute are not
    few = statements_for_list()
    for _ in range(3):
        filing_in("submitted")
    assert statements_for_list() == few
