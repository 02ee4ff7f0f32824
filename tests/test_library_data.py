"""The public library's open data, read-only API, Atom feed, city standings and statistics (issue 6, part B).

Every export is parsed the way a user's program would (json, csv, xml.etree) and holds the public filings and only
them; the entry JSON validates against the published schema; the API is open to every origin, errors included;
the standings follow the printed rules on crafted data; the statistics equal a count made here independently.
"""

from __future__ import annotations

import csv
import io
import json
import xml.etree.ElementTree as ET
from collections import Counter
from datetime import timedelta
from urllib.parse import quote

import pytest
import sqlalchemy as sa
from sqlmodel import Session, select

from registry.audit_jobs.models import AuditJob, JobState
from registry.db import utcnow
from registry.decisions.models import Decision
from registry.filings.models import Filing
from registry.library import data_views, opendata, page_cache, public, standings
from schemas import validation
from tests.test_audit_jobs import DATASET, credit_model, file_credit_filing  # noqa: F401 - fixture

ATOM = "{http://www.w3.org/2005/Atom}"
PUBLIC_STATES = ("approved", "approved_with_conditions", "rejected", "suspended")
HIDDEN_STATES = ("draft", "submitted", "under_review", "changes_requested")


def _filing(app, filing_id: int) -> Filing:
    with Session(app.extensions["registry"].engine, expire_on_commit=False) as s:
        return s.get(Filing, filing_id)


def _key(filing: Filing) -> str:
    return public.entry_key(filing.filing_number, filing.id)


@pytest.fixture
def library(app, filing_in):
    """Public filings in four states (two cities) and filings nobody outside may see; returns both, loaded."""
    shown = [filing_in(state) for state in PUBLIC_STATES] + [filing_in("approved", city_user="luoyang")]
    hidden = [filing_in(state) for state in HIDDEN_STATES]
    return [_filing(app, i) for i in shown], [_filing(app, i) for i in hidden]


def _csv(response) -> list[dict]:
    text = response.get_data().decode("utf-8")
    assert text.startswith("\ufeff"), "no byte-order mark: Excel would garble the Chinese"
    return list(csv.DictReader(io.StringIO(text[1:])))


# --- the entry ------------------------------------------------------------------------------------------------------


def test_each_public_entry_as_json_validates_against_the_published_schema(app, library):
    shown, _hidden = library
    client = app.test_client()
    schema = client.get("/schemas/library-entry.json")
    assert schema.status_code == 200 and schema.get_json()["$id"] == "urn:algorithm-registry:schema:library-entry:1"
    for filing in shown:
        response = client.get(f"/library/{quote(_key(filing))}.json")
        assert response.status_code == 200, response.get_data(as_text=True)[:300]
        body = response.get_json()
        assert validation.validate("library-entry", body) == [], filing.state
        assert body["state"] == filing.state and body["name_zh"] == filing.algorithm_name_zh
        assert response.headers["Access-Control-Allow-Origin"] == "*"
        assert "/schemas/library-entry.json" in response.headers["Link"]
        # The API gives the same document.
        assert client.get(f"/api/v1/library/{quote(_key(filing))}").get_json() == body
    conditions = client.get(f"/library/{quote(shown[1].filing_number)}.json").get_json()["decisions"][0]
    assert conditions["outcome"] == "approved_with_conditions" and conditions["conditions"]


def test_a_broken_entry_fails_the_schema_by_pointer(app, library):
    shown, _hidden = library
    body = app.test_client().get(f"/library/{quote(shown[0].filing_number)}.json").get_json()
    body["document"]["contacts"] = [{"name": "李明", "email": "li@example.cn"}]  # personal data may never appear
    body["state"] = "draft"
    pointers = {e.pointer for e in validation.validate("library-entry", body)}
    assert {"/document/contacts", "/state"} <= pointers


def test_drafts_and_filings_in_review_have_no_entry_anywhere(app, library):
    _shown, hidden = library
    client = app.test_client()
    for filing in hidden:
        for url in (
            f"/library/{filing.id}.json",
            f"/library/{filing.id}.csv",
            f"/api/v1/library/{filing.id}",
        ):
            response = client.get(url)
            assert response.status_code == 404, url
            assert response.mimetype == "application/problem+json"
            assert response.headers["Access-Control-Allow-Origin"] == "*"


def test_the_entry_csv_has_the_per_group_figures_of_its_audit(app, api, documents, credit_model):  # noqa: F811
    filing_id = _audited_and_approved(app, api, documents, credit_model)
    filing = _filing(app, filing_id)
    client = app.test_client()
    entry = client.get(f"/library/{quote(filing.filing_number)}.json").get_json()
    assert validation.validate("library-entry", entry) == []  # the audit report inside, against its own schema
    assert len(entry["audits"]) == 1
    report = entry["audits"][0]["report"]

    response = client.get(f"/library/{quote(filing.filing_number)}.csv")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    rows = _csv(response)
    assert list(rows[0]) == [name for name, _ in opendata.ENTRY_CSV_COLUMNS]
    facts = {r["measure"]: r["value"] for r in rows if r["section"] == "entry"}
    assert facts["filing_number"] == filing.filing_number
    assert facts["name_zh"] == filing.algorithm_name_zh  # Chinese intact
    assert facts["state"] == "approved"
    # Every intersection's selection rate and accuracy, with its interval, exactly as the report has them.
    intervals = {json.dumps(r["group"], sort_keys=True): r for r in report["intervals"]["by_group"]}
    order = report["sensitive_attributes"]
    for group in report["by_group"]:
        label = "; ".join(f"{k}={group['group'][k]}" for k in order if k in group["group"])
        for measure in ("selection_rate", "accuracy"):
            row = next(r for r in rows if r["section"] == "group" and r["group"] == label and r["measure"] == measure)
            assert float(row["value"]) == pytest.approx(group[measure])
            low, high = intervals[json.dumps(group["group"], sort_keys=True)][measure] or (None, None)
            if low is not None:
                assert float(row["ci_low"]) == pytest.approx(low) and float(row["ci_high"]) == pytest.approx(high)
    criteria = [r for r in rows if r["section"] == "criterion"]
    assert [r["group"] for r in criteria] == [c["id"] for c in report["criteria"]]
    assert {r["status"] for r in criteria} <= {"pass", "fail", "insufficient_data"}
    verdict = next(r for r in rows if r["section"] == "audit" and r["measure"] == "verdict")
    assert verdict["value"] == entry["audits"][0]["verdict"]


def _audited_and_approved(app, api, documents, credit_model) -> int:  # noqa: F811
    """A Zhengzhou filing audited on the German credit data and approved on that audit (four eyes)."""
    from registry.audit_jobs.worker import run_pending

    filing_id = file_credit_filing(api, documents, credit_model["bytes"], credit_model["columns"])
    reviewer1, reviewer2 = api("reviewer1"), api("reviewer2")
    assert reviewer1.post(f"/api/v1/filings/{filing_id}/actions/start_review").status_code == 200
    job = reviewer1.post(f"/api/v1/filings/{filing_id}/audits", json={"dataset": DATASET, "replicates": 20})
    assert job.status_code == 202, job.get_json()
    state = app.extensions["registry"]
    assert run_pending(engine=state.engine, content=state.content) == 1
    proposed = reviewer1.post(
        f"/api/v1/filings/{filing_id}/decisions", json={"outcome": "approved", "audit_job_ids": [job.get_json()["id"]]}
    ).get_json()
    if proposed["state"] == "proposed":
        assert reviewer2.post(f"/api/v1/decisions/{proposed['id']}/countersign").status_code == 200
    return filing_id


# --- the whole library ----------------------------------------------------------------------------------------------


def test_library_json_lists_every_public_filing_and_only_those_with_working_links(app, library):
    shown, hidden = library
    client = app.test_client()
    response = client.get("/library.json")
    assert response.status_code == 200 and response.mimetype == "application/json"
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    body = json.loads(response.get_data(as_text=True))
    assert body["total"] == len(body["items"]) == len(shown)
    assert sorted(i["filing_id"] for i in body["items"]) == sorted(f.id for f in shown)
    assert not {f.id for f in hidden} & {i["filing_id"] for i in body["items"]}
    assert body["entry_schema"].endswith("/schemas/library-entry.json")
    for item in body["items"]:
        for kind in ("json", "csv", "api"):
            assert client.get(item["links"][kind]).status_code == 200, item["links"][kind]
        assert item["links"]["page"].endswith("/library/" + quote(_key(_filing(app, item["filing_id"]))))


def test_library_csv_has_the_bom_the_documented_columns_and_the_chinese_intact(app, library):
    shown, _hidden = library
    response = app.test_client().get("/library.csv")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    rows = _csv(response)
    assert list(rows[0]) == [name for name, _ in opendata.LIBRARY_CSV_COLUMNS]
    assert sorted(int(r["filing_id"]) for r in rows) == sorted(f.id for f in shown)
    by_id = {int(r["filing_id"]): r for r in rows}
    for filing in shown:
        row = by_id[filing.id]
        assert row["name_zh"] == filing.algorithm_name_zh and row["state"] == filing.state
        assert row["filing_number"] == (filing.filing_number or "")
        assert row["decision_date"]  # a rejection's too, which has no decided_at
    assert by_id[shown[2].id]["outcome"] == "rejected" and by_id[shown[3].id]["outcome"] == "approved"  # suspended
    assert {r["city_name_zh"] for r in rows} == {"郑州市", "洛阳市"}


def test_the_whole_library_streams_in_batches_without_losing_a_row(app, library, session):
    shown, _hidden = library
    rows = list(opendata.iter_summaries(session=session, batch=2))  # five public filings: three batches
    assert [r["filing_id"] for r in rows] == sorted(f.id for f in shown)


def test_a_text_cell_that_looks_like_a_formula_is_defused(app, filing_in, documents):
    document = json.loads(json.dumps(documents.technical_document))
    document["department"] = '=HYPERLINK("http://evil.example","点我")'
    filing_in("approved", document=document)
    rows = _csv(app.test_client().get("/library.csv"))
    assert rows[0]["department"] == "'" + document["department"]


# --- the Atom feed --------------------------------------------------------------------------------------------------


def test_the_atom_feed_has_one_entry_per_logged_step_newest_first_with_stable_ids(app, library):
    shown, _hidden = library
    client = app.test_client()
    response = client.get("/library/feed.atom")
    assert response.status_code == 200 and response.mimetype == "application/atom+xml"
    feed = ET.fromstring(response.get_data())  # well-formed
    assert feed.tag == f"{ATOM}feed"
    for required in ("id", "title", "updated", "author/" + ATOM + "name"):
        assert feed.find(ATOM + required) is not None and feed.find(ATOM + required).text, required
    assert feed.find(f"{ATOM}link[@rel='self']").get("href").endswith("/library/feed.atom")
    entries = feed.findall(f"{ATOM}entry")
    # approved, approved with conditions, rejected, approved + suspended, approved (Luoyang): six logged steps.
    assert len(entries) == 6
    for entry in entries:
        assert entry.find(f"{ATOM}id").text.startswith("tag:")
        assert entry.find(f"{ATOM}title").text and entry.find(f"{ATOM}updated").text
        assert entry.find(f"{ATOM}link[@rel='alternate']").get("href")
    updated = [e.find(f"{ATOM}updated").text for e in entries]
    assert updated == sorted(updated, reverse=True)
    kinds = Counter(e.find(f"{ATOM}category").get("term") for e in entries)
    assert kinds == {"approved": 3, "approved_with_conditions": 1, "rejected": 1, "suspended": 1}
    newest = entries[0]
    assert newest.find(f"{ATOM}category").get("term") == "approved"  # Luoyang's, filed last
    suspended = shown[3]
    link = next(
        e.find(f"{ATOM}link[@rel='alternate']").get("href")
        for e in entries
        if e.find(f"{ATOM}category").get("term") == "suspended"
    )
    assert link.endswith("/library/" + quote(suspended.filing_number))
    again = ET.fromstring(client.get("/library/feed.atom").get_data())
    assert [e.find(f"{ATOM}id").text for e in again.findall(f"{ATOM}entry")] == [
        e.find(f"{ATOM}id").text for e in entries
    ]
    # Nothing of the hidden filings.
    text = response.get_data(as_text=True)
    assert "under_review" not in text and "draft" not in text


# --- the API --------------------------------------------------------------------------------------------------------


def test_the_api_lists_and_filters_public_filings_only(app, library):
    shown, _hidden = library
    client = app.test_client()
    everything = client.get("/api/v1/library")
    assert everything.status_code == 200 and everything.headers["Access-Control-Allow-Origin"] == "*"
    body = everything.get_json()
    assert body["total"] == len(shown) and sorted(i["filing_id"] for i in body["items"]) == sorted(f.id for f in shown)
    luoyang = client.get("/api/v1/library?city=410300").get_json()
    assert [i["filing_id"] for i in luoyang["items"]] == [shown[4].id]
    rejected = client.get("/api/v1/library?decision=rejected").get_json()
    assert [i["filing_id"] for i in rejected["items"]] == [shown[2].id]
    assert client.get("/api/v1/library?outcome=rejected").get_json() == rejected  # the library page's name for it
    found = client.get("/api/v1/library?q=" + quote("低保")).get_json()  # a two-character term of the purpose
    assert sorted(i["filing_id"] for i in found["items"]) == sorted(f.id for f in shown)
    assert client.get("/api/v1/library?q=" + quote("医保")).get_json()["total"] == 0
    suspended = client.get("/api/v1/library?state=suspended").get_json()
    assert [i["filing_id"] for i in suspended["items"]] == [shown[3].id]
    paged = client.get("/api/v1/library?per_page=2&page=2").get_json()
    assert paged["total"] == len(shown) and paged["pages"] == 3 and len(paged["items"]) == 2
    assert "page=3" in paged["links"]["next"] and "page=1" in paged["links"]["prev"]
    assert client.get(paged["links"]["next"]).get_json()["items"]


@pytest.mark.parametrize(
    ("query", "pointer"),
    [
        ("tier=V", "/query/tier"),
        ("state=draft", "/query/state"),
        ("decision=maybe", "/query/decision"),
        ("city=999999", "/query/city"),
        ("year=twenty", "/query/year"),
        ("per_page=1000", "/query/per_page"),
        ("sort=random", "/query/sort"),
    ],
)
def test_a_bad_api_parameter_is_a_422_naming_it_with_cors(app, query, pointer):
    response = app.test_client().get(f"/api/v1/library?{query}")
    assert response.status_code == 422 and response.mimetype == "application/problem+json"
    assert [e["pointer"] for e in response.get_json()["errors"]] == [pointer]
    assert response.headers["Access-Control-Allow-Origin"] == "*"


def test_cors_preflight_is_answered_and_errors_carry_cors_too(app):
    client = app.test_client()
    preflight = client.options(
        "/api/v1/library",
        headers={
            "Origin": "https://data.example.org",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "accept-language",
        },
    )
    assert preflight.status_code in (200, 204)
    assert preflight.headers["Access-Control-Allow-Origin"] == "*"
    assert "GET" in preflight.headers["Access-Control-Allow-Methods"]
    assert "accept-language" in preflight.headers["Access-Control-Allow-Headers"]
    for url in ("/api/v1/library/豫算备410100-2099-9999", "/api/v1/library/no/such/thing"):
        missing = client.get(url)
        assert missing.status_code == 404 and missing.headers["Access-Control-Allow-Origin"] == "*", url
    for url in ("/api/v1/library/standings", "/api/v1/library/statistics"):
        assert client.get(url).headers["Access-Control-Allow-Origin"] == "*"


def test_the_openapi_document_describes_the_library_with_the_published_schema(app):
    document = app.test_client().get("/api/v1/openapi.json").get_json()
    entry = document["paths"]["/api/v1/library/{filing_number}"]["get"]
    assert entry["responses"]["200"]["content"]["application/json"]["schema"] == {"$ref": "/schemas/library-entry.json"}
    assert entry["security"] == []
    files = {f["path"]: f for f in document["x-open-data"]["files"]}
    assert [c["name"] for c in files["/library.csv"]["columns"]] == [n for n, _ in opendata.LIBRARY_CSV_COLUMNS]
    assert {
        "/library.json",
        "/library/{filing_number}.json",
        "/library/{filing_number}.csv",
        "/library/feed.atom",
    } <= set(files)


# --- city standings -------------------------------------------------------------------------------------------------


def _set_due(app, filing_id: int, due) -> None:
    """Write a re-audit date straight into the database, behind the registry's back (the scheduler writes it with a
    decision or an audit finishing, which the page cache follows): callers turn the cache off first."""
    assert not app.config["LIBRARY_CACHE_SECONDS"], "a date written behind the registry's back: cache off"
    with Session(app.extensions["registry"].engine) as s:
        s.execute(sa.update(Filing.__table__).where(Filing.__table__.c.id == filing_id).values(next_audit_due=due))
        s.commit()


def _lights(app) -> dict[str, dict]:
    body = app.test_client().get("/api/v1/library/standings").get_json()
    return {item["city"]["code"]: item for item in body["items"]}


def test_standings_follow_the_rules_on_crafted_data(app, filing_in, monkeypatch):
    app.config["LIBRARY_CACHE_SECONDS"] = 0  # the dates below are written straight into the database
    zhengzhou = filing_in("approved")
    luoyang = filing_in("approved", city_user="luoyang")
    lights = _lights(app)
    assert {code: item["colour"] for code, item in lights.items()} == dict.fromkeys(lights, "green")
    assert lights["410100"]["counts"]["in_force"] == 1

    # Red: Zhengzhou's approved algorithm is overdue for its re-audit; it is named.
    _set_due(app, zhengzhou, utcnow() - timedelta(days=1))
    # Yellow: Luoyang's falls due within 30 days.
    _set_due(app, luoyang, utcnow() + timedelta(days=10))
    lights = _lights(app)
    assert lights["410100"]["colour"] == "red" and lights["410100"]["counts"]["reaudit_overdue"] == 1
    assert [f["filing_number"] for f in lights["410100"]["reaudit_overdue_filings"]] == [
        _filing(app, zhengzhou).filing_number
    ]
    assert lights["410300"]["colour"] == "yellow" and lights["410300"]["counts"]["reaudit_due_soon"] == 1
    assert lights["410500"]["colour"] == "green"  # Anyang: nothing filed

    # Red again, by a failed re-audit, once the date is no longer the reason.
    _set_due(app, zhengzhou, utcnow() + timedelta(days=200))
    assert _lights(app)["410100"]["colour"] == "green"
    filing = _filing(app, zhengzhou)
    with Session(app.extensions["registry"].engine) as s:
        s.add(
            AuditJob(
                filing_id=zhengzhou,
                state=JobState.FAILED,
                dataset=DATASET,
                tier=filing.risk_tier,
                model_sha256=filing.model_sha256,
                reason="reaudit",
                error="the model could not be run",
            )
        )
        s.commit()
    lights = _lights(app)
    assert lights["410100"]["colour"] == "red" and lights["410100"]["counts"]["reaudit_failed"] == 1
    assert lights["410100"]["reaudit_failed_filings"][0]["filing_number"] == filing.filing_number


def test_a_change_request_unanswered_for_30_days_turns_the_city_yellow_counted_not_named(app, filing_in, monkeypatch):
    sent_back = _filing(app, filing_in("changes_requested", city_user="luoyang"))
    assert _lights(app)["410300"]["colour"] == "green"  # asked today: the city still has time
    later = utcnow() + timedelta(days=standings.UNANSWERED_DAYS, hours=1)
    monkeypatch.setattr(data_views, "utcnow", lambda: later)  # the reader looks a month later; history is kept
    lights = _lights(app)
    assert lights["410300"]["colour"] == "yellow" and lights["410300"]["counts"]["changes_unanswered"] == 1
    assert lights["410100"]["colour"] == "green"
    page = app.test_client().get("/library/standings?lang=en")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert sent_back.algorithm_name_zh not in html and sent_back.algorithm_name_en not in html  # counts only
    row = html[html.index('id="city-410300"') :]
    row = row[: row.index("</tr>")]
    assert "light-yellow" in row


def test_the_standings_are_cached_until_a_light_may_change_by_time_alone(app, filing_in, monkeypatch):
    zhengzhou = _filing(app, filing_in("approved"))
    due = zhengzhou.next_audit_due
    assert due is not None and due > utcnow() + timedelta(days=standings.DUE_SOON_DAYS)
    clock = {"now": utcnow()}
    monkeypatch.setattr(data_views, "utcnow", lambda: clock["now"])
    monkeypatch.setattr(page_cache, "utcnow", lambda: clock["now"])
    client = app.test_client()
    client.get("/library")  # a reader with a session, as a browser: the front door answers their next asks

    def ask(path="/api/v1/library/standings"):
        answer = client.get(path)
        assert answer.status_code == 200
        return answer

    first = ask().get_json()
    assert first["items"][0]["colour"] == "green"
    clock["now"] += timedelta(hours=1)
    assert ask().get_json()["as_of"] == first["as_of"]  # served again: nothing changed, nothing fell due

    clock["now"] = due - timedelta(days=standings.DUE_SOON_DAYS) + timedelta(seconds=1)
    soon = ask().get_json()
    assert soon["as_of"] != first["as_of"] and soon["items"][0]["colour"] == "yellow"
    clock["now"] = due + timedelta(seconds=1)  # the date passes: red, with nothing written to the database
    late = ask().get_json()
    assert late["items"][0]["colour"] == "red"
    assert [f["filing_number"] for f in late["items"][0]["reaudit_overdue_filings"]] == [zhengzhou.filing_number]
    page = ask("/library/standings?lang=en").get_data(as_text=True)
    assert "light-red" in page[page.index('id="city-410100"') :].split("</tr>")[0]


@pytest.mark.parametrize("lang", ["zh_CN", "en"])
def test_the_standings_page_prints_the_rules_and_a_text_label_beside_each_colour(app, filing_in, lang):
    app.config["LIBRARY_CACHE_SECONDS"] = 0  # the dates below are written straight into the database
    overdue = filing_in("approved")
    _set_due(app, overdue, utcnow() - timedelta(days=3))
    page = app.test_client().get(f"/library/standings?lang={lang}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    for rule in standings.RULES:
        assert (rule["zh"] if lang == "zh_CN" else rule["en"]) in html
    row = html[html.index('id="city-410100"') :]
    row = row[: row.index("</tr>")]
    assert "light-red" in row and "<rect" in row  # a square, not only a colour
    assert 'id="standings-red"' in html and _filing(app, overdue).filing_number in html


# --- statistics -----------------------------------------------------------------------------------------------------


def test_statistics_equal_an_independent_count(app, library, session):
    shown, _hidden = library
    body = app.test_client().get("/api/v1/library/statistics").get_json()
    assert body["public_filings"] == len(shown)
    by_city = {r["code"]: r["count"] for r in body["by_city"]}
    assert by_city == {code: Counter(f.city_code for f in shown)[code] for code in by_city}
    assert {r["state"]: r["count"] for r in body["by_state"] if r["count"]} == Counter(f.state for f in shown)
    assert {r["tier"]: r["count"] for r in body["by_tier"] if r["count"]} == Counter(f.risk_tier for f in shown)
    assert {r["scenario"]: r["count"] for r in body["by_scenario"]} == Counter(f.scenario for f in shown)
    outcomes = Counter(
        d.outcome
        for d in session.exec(select(Decision).where(Decision.state == "effective"))
        if d.filing_id in {f.id for f in shown}
    )
    assert {r["outcome"]: r["count"] for r in body["by_decision"] if r["count"]} == outcomes
    months = body["decisions_by_month"]
    assert len(months) == 1 and months[0]["month"] == utcnow().strftime("%Y-%m")
    assert months[0]["total"] == sum(outcomes.values()) == len(shown)
    assert months[0]["approved"] == outcomes["approved"]


@pytest.mark.parametrize("lang", ["zh_CN", "en"])
def test_the_statistics_page_has_each_chart_and_its_table(app, library, lang):
    html = app.test_client().get(f"/library/statistics?lang={lang}").get_data(as_text=True)
    for table in ("by-city", "by-scenario", "by-tier", "by-decision", "by-state", "by-month"):
        section = html[html.index(f'id="{table}-title"') :]
        assert "<svg" in section[: section.index("</section>")], table
        assert f'<table id="{table}">' in section and "<caption>" in section
    city_table = html[html.index('<table id="by-city">') :]
    city_table = city_table[: city_table.index("</table>")]
    zhengzhou = "郑州市" if lang == "zh_CN" else "Zhengzhou"
    assert f'<th scope="row">{zhengzhou}</th><td>4</td>' in city_table.replace("\n", "")
