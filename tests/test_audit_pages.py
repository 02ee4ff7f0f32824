"""The audit pages: the panel on a filing, starting an audit by form, its progress page, its report, comparison."""

from __future__ import annotations

import re

from registry.audit_jobs.worker import run_pending
from tests.conftest import csrf_token
from tests.test_audit_jobs import DATASET, credit_model, file_credit_filing  # noqa: F401 - fixture

__all__ = ["credit_model"]


def _start_by_form(browser, filing_id: int, **fields):
    page = browser.get(f"/filings/{filing_id}")
    html = page.get_data(as_text=True)
    data = {"csrf_token": csrf_token(html), "dataset": DATASET} | fields
    return html, browser.post(f"/filings/{filing_id}/audits", data=data)


def test_a_reviewer_starts_an_audit_watches_it_and_reads_the_report(app, api, browser_as, documents, credit_model):  # noqa: F811
    filing_id = file_credit_filing(api, documents, credit_model["bytes"], credit_model["columns"])
    reviewer = browser_as("reviewer1")
    panel, started = _start_by_form(reviewer, filing_id, sensitive_attributes=["sex", "age_band"])
    assert 'id="audits"' in panel and "german-credit" in panel and "Statlog" in panel  # each set's description
    assert 'name="sensitive_attributes" value="foreign_worker"' in panel
    assert started.status_code == 303
    audit_url = started.headers["Location"]
    assert re.fullmatch(r"/audits/\d+", audit_url)

    waiting = reviewer.get(audit_url)
    html = waiting.get_data(as_text=True)
    assert waiting.status_code == 200
    assert '<meta http-equiv="refresh" content="3">' in html and "<script" not in html
    assert 'id="audit-state"' in html

    assert run_pending(engine=app.extensions["registry"].engine, content=app.extensions["registry"].content) == 1
    done = reviewer.get(audit_url).get_data(as_text=True)
    assert 'http-equiv="refresh"' not in done
    assert '<table id="criteria">' in done and "29 CFR 1607.4(D)" in done  # criteria with their sources
    assert '<table id="group-table">' in done and 'scope="row"' in done and "<caption>" in done
    assert "sex = female, age_band = 25-44" in done  # intersections
    assert 'class="insufficient"' in done  # small groups marked, in words as well as style
    assert 'role="img"' in done and "<figcaption" in done  # the chart and its text alternative
    assert 'id="claims-table"' in done

    filing_page = reviewer.get(f"/filings/{filing_id}").get_data(as_text=True)
    assert audit_url in filing_page


def test_the_city_team_reads_its_own_report_page_but_has_no_start_form_and_other_cities_get_404(
    app,
    api,
    browser_as,
    documents,
    credit_model,  # noqa: F811
):
    filing_id = file_credit_filing(api, documents, credit_model["bytes"], credit_model["columns"])
    job_id = api("reviewer1").post(f"/api/v1/filings/{filing_id}/audits", json={"dataset": DATASET, "replicates": 10})
    job_id = job_id.get_json()["id"]
    run_pending(engine=app.extensions["registry"].engine, content=app.extensions["registry"].content)

    city = browser_as("zhengzhou")
    filing_page = city.get(f"/filings/{filing_id}").get_data(as_text=True)
    assert f"/audits/{job_id}" in filing_page and "audit-start" not in filing_page
    report = city.get(f"/audits/{job_id}")
    assert report.status_code == 200 and '<table id="criteria">' in report.get_data(as_text=True)
    assert browser_as("luoyang").get(f"/audits/{job_id}").status_code == 404


def test_a_failed_audit_shows_its_error(app, api, browser_as, filing_in):
    filing_id = filing_in("submitted")
    job_id = api("reviewer1").post(f"/api/v1/filings/{filing_id}/audits", json={"dataset": DATASET}).get_json()["id"]
    run_pending(engine=app.extensions["registry"].engine, content=app.extensions["registry"].content)
    html = browser_as("reviewer1").get(f"/audits/{job_id}").get_data(as_text=True)
    assert 'id="audit-error"' in html and "input" in html.lower()


def test_attributes_of_another_data_set_are_refused_on_the_page(api, browser_as, filing_in):
    filing_id = filing_in("submitted")
    _panel, refused = _start_by_form(browser_as("reviewer1"), filing_id, sensitive_attributes=["race"])
    assert refused.status_code == 422
    assert 'id="audit-error"' in refused.get_data(as_text=True)


def test_two_audits_of_a_filing_are_compared_side_by_side(app, api, browser_as, documents, credit_model):  # noqa: F811
    filing_id = file_credit_filing(api, documents, credit_model["bytes"], credit_model["columns"])
    reviewer = api("reviewer1")
    ids = [
        reviewer.post(
            f"/api/v1/filings/{filing_id}/audits",
            json={"dataset": DATASET, "sensitive_attributes": attrs, "replicates": 10},
        ).get_json()["id"]
        for attrs in (["sex"], ["age_band"])
    ]
    run_pending(engine=app.extensions["registry"].engine, content=app.extensions["registry"].content)
    page = browser_as("reviewer1").get(f"/audits/compare?a={ids[0]}&b={ids[1]}")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert 'id="compare-overall"' in html and 'id="compare-criteria"' in html
    assert html.count(f"/audits/{ids[0]}") >= 1 and html.count(f"/audits/{ids[1]}") >= 1


def test_the_report_page_explains_what_drives_the_decisions_in_chinese_and_english(
    app,
    api,
    browser_as,
    documents,
    credit_model,  # noqa: F811
):
    from flask_babel import gettext
    from markupsafe import escape

    filing_id = file_credit_filing(api, documents, credit_model["bytes"], credit_model["columns"])
    reviewer = api("reviewer1")
    job_id = reviewer.post(f"/api/v1/filings/{filing_id}/audits", json={"dataset": DATASET, "replicates": 20})
    job_id = job_id.get_json()["id"]
    run_pending(engine=app.extensions["registry"].engine, content=app.extensions["registry"].content)
    report = reviewer.get(f"/api/v1/audits/{job_id}/report").get_json()
    section = report["explainability"]
    # The technical document lists every input as not sensitive; age is the column of the attribute age_band.
    assert section["technical_document"] is True and section["summary"]["undeclared_sensitive_inputs"] == 1

    browser = browser_as("reviewer1")
    chinese = browser.get(f"/audits/{job_id}").get_data(as_text=True)
    with app.test_request_context("/"):  # the default language: Chinese (as far as the catalog has it)
        heading, attention = gettext("What drives the decisions"), gettext("Needs attention:")
    assert 'id="explainability"' in chinese and f'<h3 id="drivers">{heading}</h3>' in chinese
    assert 'id="importance-chart"' in chinese and 'aria-labelledby="importance-chart-caption"' in chinese
    assert '<table id="importance-table">' in chinese and '<table id="proxy-table">' in chinese
    assert '<table id="flip-table">' in chinese and "<code>age</code> — " in chinese
    for finding in section["findings"]:  # the sentences are the report's own, in the page's language
        assert str(escape(finding["text_zh"])) in chinese
        assert str(escape(finding["text_en"])) not in chinese
    assert f"<strong>{attention}</strong>" in chinese  # the undeclared sensitive input, marked in words
    # The chart and its table name the inputs in the same order, the most important first.
    order = [row["input"] for row in section["importance"]["overall"]]
    chart = chinese[
        chinese.index('id="importance-chart"') : chinese.index("</figure>", chinese.index('id="importance-chart"'))
    ]
    table = chinese[chinese.index('<table id="importance-table">') :]
    assert (
        sorted(order, key=chart.index) == order
        and sorted(order, key=lambda n: table.index(f"<code>{n}</code>")) == order
    )

    english = browser.get(f"/audits/{job_id}?lang=en").get_data(as_text=True)
    assert "What drives the decisions" in english and "Likely proxies" in english and "Direct use" in english
    for finding in section["findings"]:
        assert str(escape(finding["text_en"])) in english
    assert "Needs attention:" in english
