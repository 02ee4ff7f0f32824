"""The public library (issue 6, part A): search that finds two-character Chinese terms and English words, filters,
order, pages and stable addresses on /library (and / for anonymous visitors), and each filing's entry page.

Every test reads the pages as an anonymous visitor would, on SQLite and on PostgreSQL (the ``app`` fixture).
"""

from __future__ import annotations

import copy
import html
import re
from html.parser import HTMLParser
from urllib.parse import parse_qs, quote, urlsplit

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from flask_babel import force_locale
from sqlmodel import Session, select

from registry import demo
from registry.cli import main
from registry.filings.models import Filing
from registry.library import search
from registry.library.search import LibrarySearch
from registry.web import labels
from tests.test_audit_jobs import DATASET, credit_model, file_credit_filing, publish_audited  # noqa: F401 - fixture

CITY_CODES = {"zhengzhou": "410100", "luoyang": "410300"}
# The demo's technical documents, by what the tests need of them.
LOW_INCOME = 0  # 最低生活保障资格认定辅助模型: 低保 in its purpose; 郑州市民政局; eligibility determination
CREDIT = 1  # 小微企业公共信用综合评价模型: credit evaluation
MEDICAL = 2  # 医保报销智能审核模型 / Medical Insurance Reimbursement…: benefit or claim review
PERMIT = 3  # 建筑施工许可图纸智能审查辅助系统: licence approval
RURAL_LOW_INCOME = 4  # 农村低保对象自动认定模型: 低保 in its name
RESULT_LINK = re.compile(r'<h3 class="result-name"><a href="([^"]+)"')


def _file(filing_in, index: int, state: str, *, city: str = "zhengzhou", **algorithm) -> int:
    """A filing of the demo's document ``index`` as ``city``'s team, walked to ``state``; ``algorithm`` overrides
    fields of its algorithm section (name_zh, name_en…)."""
    technical, reports = demo.documents()
    document = copy.deepcopy(technical[index])
    document["city_code"] = CITY_CODES[city]
    document["algorithm"].update(algorithm)
    return filing_in(state, city_user=city, document=document, report=copy.deepcopy(reports[index]))


def _filing(app, filing_id: int) -> Filing:
    with Session(app.extensions["registry"].engine) as s:
        return s.get(Filing, filing_id)


def _key(filing: Filing) -> str:
    return filing.filing_number or str(filing.id)


def _html(client, url: str, status: int = 200) -> str:
    response = client.get(url)
    assert response.status_code == status, (url, response.status_code, response.get_data(as_text=True)[:500])
    return response.get_data(as_text=True)


def _listed(client, url: str) -> list[str]:
    """The entry keys a list page shows, in order."""
    return [urlsplit(href).path.removeprefix("/library/") for href in RESULT_LINK.findall(_html(client, url))]


def _keys(app, *ids: int) -> list[str]:
    return [quote(_key(_filing(app, i))) for i in ids]


def _count(html: str) -> int:
    match = re.search(r'<p role="status" id="result-count"><strong>(\d+) ', html)
    assert match, "no result count on the page"
    return int(match.group(1))


class _Tables(HTMLParser):
    """The rows of every table with an id: {id: [[cell text, …], …]} (header and body rows, cells stripped)."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tables: dict[str, list[list[str]]] = {}
        self._table: str | None = None
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table" and attrs.get("id"):
            self._table = attrs["id"]
            self.tables[self._table] = []
        elif tag == "tr" and self._table:
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.tables[self._table].append(self._row)
            self._row = None
        elif tag == "table":
            self._table = None


@pytest.fixture
def anonymous(app):
    """A visitor without an account, reading English (so the tests can quote the page)."""
    client = app.test_client()
    client.set_cookie("lang", "en")
    return client


# --- tokens (no database) -----------------------------------------------------------------------------------------


def test_chinese_is_indexed_as_bigrams_and_other_text_as_lower_case_words():
    assert search.tokens("医保报销 Medical-Insurance ２０２６") == [
        *("医保", "保报", "报销"),  # the bigrams, in order: a query of three or more characters is a phrase of them
        *("医", "保", "报", "销"),  # and each character, for a one-character query
        *("medical", "insurance", "2026"),  # NFKC: full-width digits are digits
    ]
    assert search.tokens("低") == ["低"]
    assert search.query_terms("医保 低 Pen") == [
        search.Term(("医保",), False),
        search.Term(("低",), False),
        search.Term(("pen",), True),  # a word: its start
    ]
    assert search.query_terms("医保报销") == [search.Term(("医保", "保报", "报销"), False)]  # a phrase: in this order
    assert search.query_terms("  ,;  ") == []


def test_the_scenario_words_indexed_are_the_labels_the_pages_show(app):
    with app.test_request_context("/"):
        for code, (english, chinese) in search.SCENARIO_LABELS.items():
            with force_locale("en"):
                assert str(labels.SCENARIOS[code]) == english
            with force_locale("zh_CN"):
                assert str(labels.SCENARIOS[code]) == chinese
    assert set(search.SCENARIO_LABELS) == set(labels.SCENARIOS)


# --- search -------------------------------------------------------------------------------------------------------


def test_search_finds_two_character_chinese_terms_and_english_words_and_nothing_unpublished(app, anonymous, filing_in):
    low_income = _file(filing_in, LOW_INCOME, "approved")  # 低保 in the purpose only
    rural = _file(filing_in, RURAL_LOW_INCOME, "rejected")  # 低保 in the name
    medical = _file(filing_in, MEDICAL, "approved_with_conditions")
    _file(filing_in, MEDICAL, "draft", name_zh="医保门诊草稿模型")  # not public: never listed
    _file(filing_in, MEDICAL, "under_review", name_zh="医保住院审核模型", name_en="Hospital claims model")
    credit = _file(filing_in, CREDIT, "approved", city="luoyang")

    assert _listed(anonymous, "/library?q=医保") == _keys(app, medical)
    assert sorted(_listed(anonymous, "/library?q=低保")) == sorted(_keys(app, low_income, rural))
    assert _listed(anonymous, "/library?q=农村低保") == _keys(app, rural)  # a longer run: its bigrams in order
    assert _listed(anonymous, "/library?q=保低") == []  # the two characters, but not in this order anywhere
    assert _listed(anonymous, "/library?q=销") == _keys(app, medical)  # one character: 报销, in its name only
    assert _listed(anonymous, "/library?q=insurance") == _keys(app, medical)  # English name, any case
    assert _listed(anonymous, "/library?q=MEDICAL+insur") == _keys(app, medical)  # words AND-ed, prefixes
    assert _listed(anonymous, "/library?q=hospital") == []  # the filing in review
    assert _listed(anonymous, "/library?q=Luoyang") == _keys(app, credit)  # the city, in English
    assert _listed(anonymous, "/library?q=洛阳") == _keys(app, credit)  # and in Chinese
    assert _listed(anonymous, "/library?q=郑州市民政局") == _keys(app, low_income)  # the department, as a phrase
    assert sorted(_listed(anonymous, "/library?q=民政局")) == sorted(_keys(app, low_income, rural))  # 兰考县民政局
    assert _listed(anonymous, "/library?q=信用评价") == _keys(app, credit)  # the scenario's label, in Chinese
    assert _listed(anonymous, "/library?q=credit+evaluation") == _keys(app, credit)  # and in English
    number = _filing(app, medical).filing_number
    assert _listed(anonymous, f"/library?q={quote(number)}") == _keys(app, medical)  # its filing number
    page = _html(anonymous, "/library?q=医保")
    assert _count(page) == 1 and "医保门诊草稿模型" not in page and "医保住院审核模型" not in page


def test_a_match_in_the_name_ranks_above_a_match_in_the_purpose(app, anonymous, filing_in):
    in_purpose = _file(filing_in, LOW_INCOME, "approved")
    in_name = _file(filing_in, RURAL_LOW_INCOME, "approved")
    assert _listed(anonymous, "/library?q=低保") == _keys(app, in_name, in_purpose)


def test_the_index_follows_the_state_and_reindex_rebuilds_it(app, engine, anonymous, filing_in, monkeypatch):
    filing_id = _file(filing_in, MEDICAL, "under_review")
    with Session(engine) as s:
        assert s.get(LibrarySearch, filing_id) is None  # in review: not in the index at all
    published = _file(filing_in, MEDICAL, "approved")
    with Session(engine) as s:
        filing = s.get(Filing, published)
        filing.state = "under_review"  # as if it were not public (no lifecycle step leads back): refresh drops it
        search.refresh(s, filing)
        assert s.get(LibrarySearch, published) is None
        s.rollback()

    with Session(engine) as s:  # an index that lost its rows (e.g. a registry upgraded to this version)
        s.exec(LibrarySearch.__table__.delete())
        s.commit()
    assert _listed(anonymous, "/library?q=医保") == []
    monkeypatch.setenv("REGISTRY_INSTANCE", app.config["INSTANCE_PATH"])
    monkeypatch.setenv("DATABASE_URL", app.config["DATABASE_URL"])
    monkeypatch.setenv("REGISTRY_SECRET_KEY", "test-secret-key")
    result = CliRunner().invoke(main, ["library", "reindex"])
    assert result.exit_code == 0, result.output
    assert "1 public filing" in result.output
    assert _listed(anonymous, "/library?q=医保") == _keys(app, published)


# --- filters, order, pages ----------------------------------------------------------------------------------------


@pytest.fixture
def shelf(filing_in):
    """Public filings of several cities, scenarios, tiers and outcomes, and one in review."""
    return {
        "low_income": _file(filing_in, LOW_INCOME, "approved"),
        "medical": _file(filing_in, MEDICAL, "approved_with_conditions"),
        "permit": _file(filing_in, PERMIT, "suspended"),
        "rural": _file(filing_in, RURAL_LOW_INCOME, "rejected"),
        "credit": _file(filing_in, CREDIT, "approved", city="luoyang"),
        "review": _file(filing_in, CREDIT, "under_review", city="luoyang"),
    }


def test_each_filter_narrows_the_list(app, anonymous, shelf):
    public = [k for k in shelf if k != "review"]
    everything = _listed(anonymous, "/library")
    assert sorted(everything) == sorted(_keys(app, *(shelf[k] for k in public)))

    def only(url, *names):
        assert sorted(_listed(anonymous, url)) == sorted(_keys(app, *(shelf[n] for n in names))), url

    only("/library?city=410300", "credit")
    only("/library?city=410100", "low_income", "medical", "permit", "rural")
    only("/library?scenario=licence_approval", "permit")
    only("/library?scenario=eligibility_determination", "low_income", "rural")
    tiers = {k: _filing(app, shelf[k]).risk_tier for k in public}
    for tier in set(tiers.values()):
        only(f"/library?tier={tier}", *(k for k in public if tiers[k] == tier))
    only("/library?outcome=approved", "low_income", "permit", "credit")  # the suspended one was approved
    only("/library?outcome=approved_with_conditions", "medical")
    only("/library?outcome=rejected", "rural")
    only("/library?state=suspended", "permit")
    assert sorted(_listed(anonymous, "/library?state=under_review")) == sorted(everything)  # not public: ignored
    year = _filing(app, shelf["credit"]).decided_at.year
    only(f"/library?year={year}", *public)
    only(f"/library?year={year - 1}")
    only("/library?city=410100&outcome=approved&q=低保", "low_income")  # filters and search together


def test_unknown_filter_values_are_ignored_not_errors(app, anonymous, shelf):
    everything = _listed(anonymous, "/library")
    for url in (
        "/library?city=999999&tier=IX&scenario=astrology&outcome=maybe&year=1066&sort=random&page=-3",
        "/library?year=abc&page=abc&state=draft",
        "/library?q=" + "医" * 500,
    ):
        response = anonymous.get(url)
        assert response.status_code == 200
    assert sorted(_listed(anonymous, "/library?city=999999&tier=IX&sort=random&page=x")) == sorted(everything)


def test_sorting(app, anonymous, shelf):
    public = [shelf[k] for k in shelf if k != "review"]
    rows = {i: _filing(app, i) for i in public}

    newest = _listed(anonymous, "/library?sort=newest")
    assert newest == _listed(anonymous, "/library")  # the default without a search
    assert newest == _keys(app, *sorted(public, reverse=True))  # filed and decided in this order

    by_name = _listed(anonymous, "/library?sort=name")  # the English names on an English page
    assert by_name == _keys(app, *sorted(public, key=lambda i: rows[i].algorithm_name_en.lower()))

    tier_order = {"IV": 0, "III": 1, "II": 2, "I": 3}
    by_tier = _listed(anonymous, "/library?sort=tier")
    assert [tier_order[rows[i].risk_tier] for i in map(_id_of(app, public), by_tier)] == sorted(
        tier_order[rows[i].risk_tier] for i in public
    )
    by_city = _listed(anonymous, "/library?sort=city")
    assert [rows[i].city_code for i in map(_id_of(app, public), by_city)] == sorted(r.city_code for r in rows.values())
    assert "Newest decision first" in _html(anonymous, "/library")
    assert '<option value="tier" selected>' in _html(anonymous, "/library?sort=tier")


def _id_of(app, ids):
    by_key = dict(zip(_keys(app, *ids), ids, strict=True))
    return by_key.__getitem__


def test_pages_count_and_cover_every_result_once(app, anonymous, shelf, monkeypatch):
    monkeypatch.setattr(search, "PER_PAGE", 2)
    public = sorted(_keys(app, *(shelf[k] for k in shelf if k != "review")))
    pages = [_html(anonymous, f"/library?sort=name&page={n}") for n in (1, 2, 3)]
    assert all(_count(page) == 5 for page in pages)
    seen = [key for n in (1, 2, 3) for key in _listed(anonymous, f"/library?sort=name&page={n}")]
    assert sorted(seen) == public and len(seen) == len(set(seen))  # each once, none left out
    assert "showing 1–2, page 1 of 3" in pages[0] and "showing 5–5, page 3 of 3" in pages[2]
    assert _listed(anonymous, "/library?sort=name&page=99") == _listed(anonymous, "/library?sort=name&page=3")
    assert 'aria-current="page"' in pages[1] and 'rel="next"' not in pages[2] and 'rel="prev"' not in pages[0]


def test_every_query_has_a_stable_address(app, anonymous, shelf, monkeypatch):
    monkeypatch.setattr(search, "PER_PAGE", 2)
    page = _html(anonymous, "/library?q=&city=410100&scenario=&sort=name")
    assert '<form method="get" action="/library"' in page  # works without JavaScript, and can be bookmarked
    assert '<option value="410100" selected>' in page
    following = re.search(r'<a href="([^"]+)" rel="next">', page).group(1).replace("&amp;", "&")
    assert parse_qs(urlsplit(following).query) == {"city": ["410100"], "sort": ["name"], "page": ["2"]}  # no blanks
    assert _listed(anonymous, following) == _listed(anonymous, following)  # the same answer every time
    first = _listed(anonymous, "/library?city=410100&sort=name")
    second = _listed(anonymous, following)
    assert set(first).isdisjoint(second) and len(first) + len(second) == 4


def test_the_start_page_is_the_library_for_visitors_and_the_filings_for_staff(app, anonymous, browser_as, shelf):
    page = _html(anonymous, "/")
    assert _count(page) == 5 and 'href="/login"' in page
    assert _listed(anonymous, "/?q=医保") == _keys(app, shelf["medical"])
    assert 'href="/library">Public library</a>' in page  # in the navigation
    staff = browser_as("reviewer1")
    assert staff.get("/").status_code == 302
    assert 'href="/library"' in staff.get("/filings").get_data(as_text=True)  # staff find the library too


def test_a_row_shows_what_the_public_needs_to_know(app, anonymous, filing_in):
    filing_id = _file(filing_in, MEDICAL, "approved_with_conditions")
    filing = _filing(app, filing_id)
    page = _html(anonymous, "/library")
    for text in (
        "Medical Insurance Reimbursement Intelligent Review Model",  # the reader's language first …
        "医保报销智能审核模型",  # … and the other one
        "Zhengzhou",
        "安阳市医疗保障局",
        "Benefit or claim review",
        f"<dd>{filing.risk_tier}</dd>",
        "Approved with conditions",
        filing.filing_number,
        filing.decided_at.date().isoformat(),
    ):
        assert text in page, text
    chinese = app.test_client().get("/library").get_data(as_text=True)
    assert '<html lang="zh-CN">' in chinese and chinese.index("医保报销智能审核模型") < chinese.index(
        "Medical Insurance"
    )


# --- the entry page -----------------------------------------------------------------------------------------------


def test_the_entry_page_shows_the_decision_the_inputs_and_the_log(app, anonymous, filing_in):
    filing_id = _file(filing_in, LOW_INCOME, "approved_with_conditions")
    filing = _filing(app, filing_id)
    page = _html(anonymous, f"/library/{quote(filing.filing_number)}")
    document = filing.technical_document

    assert document["algorithm"]["purpose"] in page
    assert document["affected_population"]["description"] in page
    assert document["human_oversight"]["appeal_process"] in page
    assert "Recommends to a person" in page  # the decision role
    assert "每季度报送分组准确率。Report per-group accuracy every quarter." in page  # the demo's condition
    assert 'class="decision-conditions"' in page

    inputs = {row[0]: row for row in _Tables(page).tables["inputs-table"][1:]}
    assert inputs["disabled_members"][4] == "⚠ Sensitive attribute"
    assert inputs["residence_district"][5] == "⚠ hukou_type"  # a likely proxy, flagged
    assert inputs["household_size"][4] == "No" and inputs["household_size"][5] == "—"

    with Session(app.extensions["registry"].engine) as s:
        from registry.decision_log.models import LogEntry

        entry = s.exec(select(LogEntry).where(LogEntry.filing_id == filing_id)).one()
    assert f'id="log-entry-{entry.index}"' in page and entry.leaf_hash in page
    proof = f"/api/v1/log/entries/{entry.index}/proof"
    assert f'href="{proof}"' in page and anonymous.get(proof).status_code == 200
    assert "registry log verify --url http://localhost" in page and 'href="/api/v1/log/public-key"' in page
    assert f'href="/library/{quote(filing.filing_number)}.json"' in page  # the open data of engineer B
    assert f'href="/library/{quote(filing.filing_number)}.csv"' in page
    assert filing.risk_tier in _Tables(page).tables["risk-table"][0][0] or 'id="risk-tier"' in page
    for private in ("wang.li@zzmz.example.cn", "王丽", "0371-6718", "reviewer1", "reviewer2", "zhengzhou"):
        assert private not in page, private  # contacts and accounts are never shown


def test_a_rejection_has_an_entry_by_its_id_and_a_numbered_filing_one_address(app, anonymous, filing_in):
    rejected = _filing(app, _file(filing_in, RURAL_LOW_INCOME, "rejected"))
    assert rejected.filing_number is None
    page = html.unescape(_html(anonymous, f"/library/{rejected.id}"))
    assert "女性申请人的通过率低于男性的 80%。Selection rate for women is below 80% of men's." in page
    assert 'class="decision-reasons"' in page and "none (rejected)" in page
    approved = _filing(app, _file(filing_in, LOW_INCOME, "approved"))
    moved = anonymous.get(f"/library/{approved.id}")
    assert moved.status_code == 301 and moved.headers["Location"].endswith(f"/library/{quote(approved.filing_number)}")


def test_drafts_and_filings_in_review_have_no_entry(app, anonymous, filing_in):
    for state in ("draft", "submitted", "under_review", "changes_requested", "withdrawn"):
        filing_id = _file(filing_in, MEDICAL, state)
        _html(anonymous, f"/library/{filing_id}", status=404)
    _html(anonymous, f"/library/{quote('豫算备410100-2026-9999')}", status=404)
    _html(anonymous, "/library/" + "9" * 40, status=404)


def test_the_versions_of_an_algorithm_link_to_each_other(app, anonymous, filing_in, documents):
    with Session(app.extensions["registry"].engine, expire_on_commit=False) as s:
        old = demo.file_to_state(
            session=s,
            content=app.extensions["registry"].content,
            city_user="zhengzhou",
            reviewer_user="reviewer1",
            technical_document=copy.deepcopy(documents.technical_document),
            test_report=copy.deepcopy(documents.test_report),
            state="approved",
        )
        newer = copy.deepcopy(documents.technical_document)
        newer["algorithm"]["version"] += "-r2"
        new = demo.file_to_state(
            session=s,
            content=app.extensions["registry"].content,
            city_user="zhengzhou",
            reviewer_user="reviewer1",
            technical_document=newer,
            test_report=copy.deepcopy(documents.test_report),
            state="approved",
            supersedes_filing_id=old.id,
        )
        s.commit()
    page = _html(anonymous, f"/library/{quote(old.filing_number)}")
    assert "Superseded" in page and f'href="/library/{quote(new.filing_number)}"' in page
    history = _Tables(page).tables["history-table"]
    assert [row[1] for row in history[1:]] == ["Approve", "Supersede"]
    assert sorted(_listed(anonymous, "/library?state=superseded")) == _keys(app, old.id)


def _percent(value) -> str:
    return "—" if value is None else f"{value * 100:.1f} %"


def _interval(pair) -> str:
    return "—" if not pair else f"[{pair[0] * 100:.1f}, {pair[1] * 100:.1f}] %"


def test_the_entry_page_shows_the_audit_figures_of_the_report(app, api, anonymous, documents, credit_model):  # noqa: F811
    filing_id = file_credit_filing(api, documents, credit_model["bytes"], credit_model["columns"])
    (job,) = publish_audited(
        app,
        api,
        filing_id,
        [{"sensitive_attributes": ["sex", "age_band"]}],
        outcome="approved_with_conditions",
        conditions=["Re-audit after retraining."],
    )
    report = api("reviewer1").get(f"/api/v1/audits/{job}/report").get_json()
    number = _filing(app, filing_id).filing_number

    page = _html(anonymous, f"/library/{quote(number)}")
    tables = _Tables(page).tables
    groups = {row[0]: row for row in tables["audit-1-groups"][1:]}
    intervals = report["intervals"]
    expected = [
        (row, next(r for r in intervals["by_attribute"][a] if r["group"] == row["group"]))
        for a, rows in report["by_attribute"].items()
        for row in rows
    ]
    expected += [
        (row, next(r for r in intervals["by_group"] if r["group"] == row["group"])) for row in report["by_group"]
    ]
    assert len(groups) == len(expected)
    for row, ci in expected:
        order = [a for a in report["sensitive_attributes"] if a in row["group"]]  # the JSON answer sorts keys
        label = ", ".join(f"{a} = {row['group'][a]}" for a in order)
        shown = groups[label + (" insufficient data" if row.get("insufficient_data") else "")]
        assert shown[1] == str(row["n"])
        assert shown[2:4] == [_percent(row.get("selection_rate")), _interval(ci.get("selection_rate"))]
        assert shown[4:6] == [_percent(row.get("accuracy")), _interval(ci.get("accuracy"))]
    assert page.count('<rect x="220"') == len(expected)  # one bar per group in the chart, beside the table
    criteria = tables["audit-1-criteria"][1:]
    assert len(criteria) == len(report["criteria"])
    met = sum(1 for c in report["criteria"] if c["status"] == "pass")
    assert f"{met} of {len(report['criteria'])} criteria met" in page
    verdict = {"meets": "Meets the policy", "does_not_meet": "Does not meet the policy"}[report["verdict"]]
    assert verdict in page
    claims = tables["audit-1-claims"][1:]
    assert len(claims) == len(report["claims"]["rows"])
    assert report["dataset"]["name"] in page and "Re-audit after retraining." in page
    for row in report["by_group"][:3]:
        assert str(row["n"]) in page
    # What drives the decisions (issue 8), for the public too: the same inputs, most important first, and findings.
    explained = report["explainability"]
    importance = tables["audit-1-importance-table"][1:]
    assert [row[0] for row in importance] == [r["input"] for r in explained["importance"]["overall"]]
    assert 'id="audit-1-importance-chart"' in page and 'aria-labelledby="audit-1-importance-chart-caption"' in page
    for finding in explained["findings"]:
        assert html.escape(finding["text_en"], quote=False) in page


def test_an_entry_shows_its_newest_audit_in_full_and_each_earlier_one_on_its_own_page(
    app,
    api,
    anonymous,
    documents,
    credit_model,  # noqa: F811
):
    filing_id = file_credit_filing(api, documents, credit_model["bytes"], credit_model["columns"])
    # Two audits, the second on another attribute.
    jobs = publish_audited(
        app, api, filing_id, [{"sensitive_attributes": ["sex"]}, {"sensitive_attributes": ["age_band"]}]
    )
    number = quote(_filing(app, filing_id).filing_number)
    first, newest = (api("reviewer1").get(f"/api/v1/audits/{job}/report").get_json() for job in jobs)

    page = _html(anonymous, f"/library/{number}?lang=en")
    tables = _Tables(page).tables
    listed = tables["audit-list"][1:]
    assert len(listed) == 2 and "Shown below" in listed[0][-1]  # newest first
    assert page.count('<section class="audit"') == 1  # only the newest in full
    shown = {row[0].removesuffix(" insufficient data") for row in tables["audit-1-groups"][1:]}
    assert any(label.startswith("age_band = ") for label in shown) and not any("sex = " in label for label in shown)
    assert f"/library/{number}/audits/{jobs[0]}" in page and f"/library/{number}/audits/{jobs[1]}" not in page

    earlier = _html(anonymous, f"/library/{number}/audits/{jobs[0]}?lang=en")
    groups = _Tables(earlier).tables["audit-1-groups"][1:]
    assert len(groups) == len(first["by_attribute"]["sex"]) and all(row[0].startswith("sex = ") for row in groups)
    assert f'href="/library/{number}#audits"' in earlier
    assert len(_Tables(earlier).tables["audit-1-criteria"]) - 1 == len(first["criteria"])
    # The newest has its own page too; a number that is not one of this entry's audits is not found.
    assert len(_Tables(_html(anonymous, f"/library/{number}/audits/{jobs[1]}")).tables["audit-1-groups"]) > 1
    assert anonymous.get(f"/library/{number}/audits/{jobs[1] + 100}").status_code == 404
    assert anonymous.get(f"/library/{filing_id}/audits/{jobs[0]}").status_code == 301  # one address: the number
    assert newest["verdict"] in ("meets", "does_not_meet")


def test_a_search_leaves_the_database_session_as_it_found_it(app, filing_in):
    """On PostgreSQL a search steers the planner to the text index for its own queries only."""
    medical = _file(filing_in, MEDICAL, "approved")
    with Session(app.extensions["registry"].engine) as session:
        postgres = session.get_bind().dialect.name == "postgresql"
        before = session.execute(sa.text("SHOW enable_seqscan")).scalar() if postgres else None
        found = search.find(session, search.parse({"q": "医保"}, cities=[], language="zh"))
        assert [row["filing_id"] for row in found.rows] == [medical] and found.total == 1
        if postgres:
            assert session.execute(sa.text("SHOW enable_seqscan")).scalar() == before == "on"


def test_an_upgraded_registry_builds_its_empty_search_index_on_db_upgrade(app, api, filing_in, monkeypatch):
    """Migration 0008 makes the table but cannot run the tokenizer: `registry db upgrade` fills it when empty."""
    from click.testing import CliRunner

    from registry.cli import main

    filing_in("approved")
    with app.extensions["registry"].engine.begin() as connection:
        connection.execute(sa.text("DELETE FROM library_search"))
    assert "豫算备" not in api(None).get("/library").get_data(as_text=True)
    monkeypatch.setenv("REGISTRY_INSTANCE", app.config["INSTANCE_PATH"])
    monkeypatch.setenv("DATABASE_URL", app.config["DATABASE_URL"])
    monkeypatch.setenv("REGISTRY_SECRET_KEY", "test-secret-key")
    result = CliRunner().invoke(main, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert "Built the library's search index: 1 public filing(s)." in result.output
    assert "豫算备" in api(None).get("/library").get_data(as_text=True)
    again = CliRunner().invoke(main, ["db", "upgrade"])
    assert "Built the library" not in again.output  # only when empty
