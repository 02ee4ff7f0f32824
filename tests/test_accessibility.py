"""Every page a person sees passes an automated accessibility check (axe-core) and works with the keyboard.

The app is served for real (werkzeug in a thread) and driven by Debian's chromium through Playwright; no browser is
downloaded. Without /usr/bin/chromium or Playwright these tests skip on a laptop and fail when CI=true.
A full-page screenshot of every checked page lands in test-artifacts/screenshots/<name>-<lang>.png.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from werkzeug.serving import make_server

from tests.conftest import PASSWORD, require_service
from tests.test_audit_jobs import DATASET, credit_model, file_credit_filing  # noqa: F401 - fixture

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]
SCREENSHOTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "screenshots"
BLOCKING_IMPACTS = {"serious", "critical"}
TD = "technical_document-"
LANGS = ["zh", "en"]
# What the checks read is the HTML the templates write, the same on either database: one is enough (each feature's
# own tests run on SQLite and PostgreSQL).
pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


# --- the browser (one per module) and the served app (one per test) -------------------------------------------


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        require_service(f"{CHROMIUM} is not installed (apt-get install chromium)")
    try:
        import axe_playwright_python.sync_playwright  # noqa: F401  (check_page needs it)
        from playwright.sync_api import sync_playwright
    except ImportError:
        require_service("playwright / axe-playwright-python are not installed (pip install -e '.[test]')")
    playwright = sync_playwright().start()
    try:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()
    finally:
        playwright.stop()


@pytest.fixture
def base_url(app):
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="registry-test-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture
def open_context(browser, base_url):
    """``open_context(lang)`` → a fresh browser context on the served app, in Chinese (the default) or English."""
    contexts = []

    def make(lang: str = "zh"):
        context = browser.new_context(base_url=base_url, viewport={"width": 1280, "height": 900})
        context.set_default_timeout(15_000)
        contexts.append(context)
        if lang == "en":
            context.add_cookies([{"name": "lang", "value": "en", "url": base_url}])
        return context

    yield make
    for context in contexts:
        context.close()


def log_in(page, username: str) -> None:
    """Through the real login form, as a person would."""
    page.goto("/login")
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    with page.expect_navigation():
        page.click("main form button[type=submit]")
    assert "/login" not in page.url, f"login as {username} failed"


def check_page(page, name: str, lang: str) -> None:
    """Save a screenshot, then run axe and fail on every serious or critical violation."""
    from axe_playwright_python.sync_playwright import Axe

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}-{lang}.png"), full_page=True)
    expected_lang = "en" if lang == "en" else "zh-CN"
    assert page.get_attribute("html", "lang") == expected_lang
    results = Axe().run(page)
    blocking = [v for v in results.response["violations"] if v.get("impact") in BLOCKING_IMPACTS]
    if blocking:
        lines = [f"{name} ({lang}, {page.url}): {len(blocking)} serious/critical accessibility violation(s)"]
        for v in blocking:
            lines.append(f"- {v['id']} [{v['impact']}]: {v['help']} ({v['helpUrl']})")
            for node in v["nodes"]:
                lines.append(f"    {' '.join(map(str, node['target']))}: {node.get('failureSummary', '')}".rstrip())
                lines.append(f"      {node['html'][:300]}")
        report = "\n".join(lines)
        print(report)
        pytest.fail(report, pytrace=False)


# --- the pages ---------------------------------------------------------------------------------------------------


def _home(page, filing_in):
    page.goto("/")


def _login(page, filing_in):
    page.goto("/login")


def _login_failed(page, filing_in):
    page.goto("/login")
    page.fill("#username", "zhengzhou")
    page.fill("#password", "wrong-password")
    with page.expect_navigation():
        page.click("main form button[type=submit]")
    assert page.locator("#login-error").is_visible()


def _login_locked(page, filing_in):
    for _attempt in range(5):  # the default lockout: the fifth failure locks the name
        _login_failed(page, filing_in)
    assert page.locator("#login-error").is_visible()


def _admin_security(page, filing_in):
    _login_locked(page, filing_in)
    log_in(page, "admin")
    page.goto("/admin/security")
    assert page.locator("#locked-table").is_visible() and page.locator("#trail-table tbody tr").count() == 6


def _filings(page, filing_in):
    filing_in("changes_requested")
    filing_in("draft")
    log_in(page, "zhengzhou")
    page.goto("/filings")
    assert page.locator("main table tbody tr").count() == 2


def _filings_new(page, filing_in):
    log_in(page, "zhengzhou")
    page.goto("/filings/new")


def _filings_new_errors(page, filing_in):
    log_in(page, "zhengzhou")
    page.goto("/filings/new")
    page.fill(f"#{TD}algorithm-name_zh", "养老金资格认定模型")
    page.fill(f"#{TD}contacts-0-name", "李明")
    page.fill(f"#{TD}contacts-0-email", "not-an-address")
    with page.expect_navigation():
        page.click("button[name=save]")
    assert page.locator("#error-summary").is_visible()
    assert page.locator(f"#{TD}contacts-0-email-error-1").is_visible()


def _filing_as_city(page, filing_in):
    filing_id = filing_in("changes_requested")
    log_in(page, "zhengzhou")
    page.goto(f"/filings/{filing_id}")
    assert page.locator("#filing-state").is_visible()


def _filing_as_reviewer(page, filing_in):
    filing_id = filing_in("changes_requested")
    log_in(page, "reviewer1")
    page.goto(f"/filings/{filing_id}")
    assert page.locator("#filing-state").is_visible()


def _account(page, filing_in):
    log_in(page, "zhengzhou")
    page.goto("/account")


def _inbox(page, filing_in):
    filing_id = filing_in("changes_requested")  # the reviewer's request for changes is in Zhengzhou's inbox
    log_in(page, "zhengzhou")
    page.goto("/inbox")
    assert page.locator(f"a[href='/filings/{filing_id}#comments']").count() >= 1
    assert page.locator("#mark-all-read").is_visible()


def _filings_queue(page, filing_in):
    filing_in("submitted")
    filing_in("under_review")
    filing_in("approved")
    log_in(page, "reviewer1")
    page.goto("/filings?state=submitted&tier=III&sort=waiting")
    assert page.locator("main table tbody tr").count() == 1
    assert page.locator("#city").is_visible()


def _reaudits(page, filing_in):
    filing_in("approved")
    log_in(page, "reviewer1")
    page.goto("/reaudits")
    assert page.locator("main table").count() == 3


def _decision_letter(page, filing_in):
    filing_id = filing_in("approved_with_conditions")
    log_in(page, "zhengzhou")
    page.goto(f"/filings/{filing_id}")
    with page.expect_navigation():
        page.click("a[href$='/letter']")
    assert page.locator("#letter-pdf").is_visible()


def _not_found(page, filing_in):
    filing_id = filing_in("changes_requested")  # Zhengzhou's: Luoyang may not see it
    log_in(page, "luoyang")
    response = page.goto(f"/filings/{filing_id}")
    assert response is not None and response.status == 404


def _reference_datasets(page, filing_in):
    log_in(page, "admin")
    page.goto("/admin/reference-datasets")
    assert page.locator("main table tbody tr").count() >= 3  # the shipped library


def _reference_datasets_errors(page, filing_in):
    log_in(page, "admin")
    page.goto("/admin/reference-datasets")
    page.set_input_files("#descriptor", files=[{"name": "d.json", "mimeType": "application/json", "buffer": b"{}"}])
    page.set_input_files("#data", files=[{"name": "x.csv", "mimeType": "text/csv", "buffer": b"a,b\n1,2\n"}])
    with page.expect_navigation():
        page.click("main form[enctype] button[type=submit]")
    assert page.locator("#error-summary").is_visible()
    assert page.locator("#descriptor-error-1").is_visible()


def _library_standings(page, filing_in):
    filing_in("approved")
    filing_in("changes_requested", city_user="luoyang")  # counted, never named
    page.goto("/library/standings")
    assert page.locator("#standings-table tbody tr").count() >= 2
    assert page.locator("#standings-rules li").count() == 3


def _library_statistics(page, filing_in):
    filing_in("approved")
    filing_in("rejected")
    filing_in("approved_with_conditions", city_user="luoyang")
    page.goto("/library/statistics")
    assert page.locator("#by-city tbody tr").count() >= 2
    assert page.locator("figure.chart svg").count() == 6


def _large_text(page) -> None:
    """Turn on large text and high contrast with the header's switch, as a reader would."""
    with page.expect_navigation():
        page.click("#display-toggle")
    assert page.get_attribute("html", "class") == "display-large"


def _concern_form(page, filing_in):
    filing_id = filing_in("approved")
    page.goto(f"/library/{filing_id}/concern")
    _large_text(page)
    assert page.locator("#concern-body").is_visible()


def _concern_form_errors(page, filing_in):
    filing_id = filing_in("approved")
    page.goto(f"/library/{filing_id}/concern")
    page.fill("#concern-body", "太短")
    with page.expect_navigation():
        page.click("#concern-submit")
    assert page.locator("#error-summary").is_visible() and page.locator("#concern-body-error").is_visible()


def _concern_sent(page, filing_in):
    filing_id = filing_in("approved")
    page.goto(f"/library/{filing_id}/concern")
    _large_text(page)
    page.fill("#concern-body", "我的低保申请被系统自动拒绝，但收入低于标准。")
    page.fill("#concern-contact", "wang.fang@example.cn")
    with page.expect_navigation():
        page.click("#concern-submit")
    assert page.locator("#concern-reference").is_visible()


def _filing_concerns(page, filing_in):
    _concern_sent(page, filing_in)
    log_in(page, "reviewer1")
    page.goto("/filings?state=approved")
    with page.expect_navigation():
        page.click("main table tbody tr a")
    assert page.locator("#concerns").is_visible() and page.locator("article.concern form").count() == 2


def _library(page, filing_in):
    filing_in("approved")
    filing_in("approved_with_conditions", city_user="luoyang")
    filing_in("rejected")
    filing_in("under_review")  # not public: not listed
    page.goto("/library?q=低保&sort=name")
    assert page.locator("ol.results > li").count() == 3
    assert page.locator("#q").input_value() == "低保"


def _library_entry(page, filing_in):
    filing_id = filing_in("approved_with_conditions")
    page.goto(f"/library/{filing_id}")  # the id answers with the entry's own address, its filing number
    assert page.locator("#inputs-table tr.flagged").count() >= 1
    assert page.locator(".decision-conditions li").count() == 1


PAGES: dict[str, Callable] = {
    "concern-form": _concern_form,  # with large text and high contrast on (issue 6 C)
    "concern-form-errors": _concern_form_errors,
    "concern-sent": _concern_sent,
    "filing-concerns": _filing_concerns,
    "home": _home,
    "login": _login,
    "login-failed": _login_failed,
    "login-locked": _login_locked,
    "admin-security": _admin_security,  # the login trail (issue 7)
    "filings": _filings,
    "filings-new": _filings_new,
    "filings-new-errors": _filings_new_errors,
    "filing-city": _filing_as_city,
    "filing-reviewer": _filing_as_reviewer,
    "account": _account,
    "inbox": _inbox,
    "error-404": _not_found,
    "filings-queue": _filings_queue,
    "reaudits": _reaudits,
    "decision-letter": _decision_letter,
    "reference-datasets": _reference_datasets,
    "reference-datasets-errors": _reference_datasets_errors,
    "library": _library,  # the list and search, and the entry page (issue 6 A)
    "library-entry": _library_entry,
    "library-standings": _library_standings,
    "library-statistics": _library_statistics,
}


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("name", list(PAGES))
def test_page_passes_axe(name, lang, open_context, filing_in):
    page = open_context(lang).new_page()
    PAGES[name](page, filing_in)
    check_page(page, name, lang)


@pytest.mark.parametrize("lang", LANGS)
def test_audit_report_page_passes_axe(lang, open_context, app, api, documents, credit_model):  # noqa: F811
    """A finished audit's report: criteria, group tables and charts, and the explainability sections."""
    from registry.audit_jobs.worker import run_pending

    filing_id = file_credit_filing(api, documents, credit_model["bytes"], credit_model["columns"])
    answer = api("reviewer1").post(f"/api/v1/filings/{filing_id}/audits", json={"dataset": DATASET, "replicates": 20})
    run_pending(engine=app.extensions["registry"].engine, content=app.extensions["registry"].content)
    page = open_context(lang).new_page()
    log_in(page, "reviewer1")
    page.goto(f"/audits/{answer.get_json()['id']}")
    assert page.locator("#importance-chart").is_visible() and page.locator("#flip-table").is_visible()
    check_page(page, "audit-report", lang)


@pytest.mark.parametrize("lang", LANGS)
def test_library_standings_with_every_light_pass_axe(lang, open_context, app, filing_in):
    """Red, yellow and green side by side (crafted due dates): each light's colours pass the contrast check."""
    import sqlalchemy as sa
    from sqlmodel import Session

    from registry.db import utcnow
    from registry.filings.models import Filing

    overdue, due_soon = filing_in("approved"), filing_in("approved", city_user="luoyang")
    table = Filing.__table__
    with Session(app.extensions["registry"].engine) as s:
        for filing_id, days in ((overdue, -5), (due_soon, 10)):
            s.execute(sa.update(table).where(table.c.id == filing_id).values(next_audit_due=utcnow() + timedelta(days)))
        s.commit()
    page = open_context(lang).new_page()
    page.goto("/library/standings")
    for colour in ("red", "yellow", "green"):
        assert page.locator(f"#standings-table .light-{colour}").count() >= 1, colour
    assert page.locator("#standings-red tbody tr").count() == 1
    check_page(page, "library-standings-lights", lang)


@pytest.mark.parametrize("lang", LANGS)
def test_library_entry_with_an_audit_passes_axe(lang, open_context, app, api, documents, credit_model):  # noqa: F811
    """A public entry with two of the province's audits: the list of them, and the newest in full (criteria, the
    per-group chart and table, claimed vs measured); then the earlier audit on its own page."""
    from tests.test_audit_jobs import publish_audited

    filing_id = file_credit_filing(api, documents, credit_model["bytes"], credit_model["columns"])
    jobs = publish_audited(app, api, filing_id, [{}, {}])
    page = open_context(lang).new_page()
    page.goto(f"/library/{filing_id}")
    assert page.locator("#audit-1-chart svg").is_visible() and page.locator("#audit-1-groups").is_visible()
    assert page.locator("#audit-list tbody tr").count() == 2
    check_page(page, "library-entry-audit", lang)
    page.locator(f'#audit-list a[href$="/audits/{jobs[0]}"]').click()
    assert page.locator("#audit-1-chart svg").is_visible() and page.locator("h2#audit-1-title").is_visible()
    check_page(page, "library-audit", lang)


# --- the keyboard ------------------------------------------------------------------------------------------------


def _focused(page) -> dict:
    return page.evaluate(
        """() => {
            const el = document.activeElement;
            const style = getComputedStyle(el);
            return {tag: el.tagName.toLowerCase(), id: el.id, cls: el.className,
                    outline: style.outlineStyle, outlineWidth: style.outlineWidth};
        }"""
    )


def _assert_focus_visible(focused: dict) -> None:
    assert focused["outline"] != "none" and focused["outlineWidth"] != "0px", f"no visible focus on {focused}"


@pytest.mark.parametrize("lang", LANGS)
def test_log_in_with_the_keyboard_only(lang, open_context):
    page = open_context(lang).new_page()
    page.goto("/login?next=/filings")

    page.keyboard.press("Tab")
    focused = _focused(page)
    assert focused["tag"] == "a" and "skip-link" in focused["cls"], f"the first Tab stop is {focused}"
    _assert_focus_visible(focused)
    page.keyboard.press("Enter")
    assert _focused(page)["id"] == "main", "the skip link does not move focus to main"

    page.keyboard.press("Tab")
    focused = _focused(page)
    assert focused["id"] == "username", f"after the skip link, Tab reaches {focused}"
    _assert_focus_visible(focused)
    page.keyboard.type("zhengzhou")
    page.keyboard.press("Tab")
    focused = _focused(page)
    assert focused["id"] == "password", f"after the user name, Tab reaches {focused}"
    _assert_focus_visible(focused)
    page.keyboard.type(PASSWORD)
    with page.expect_navigation():
        page.keyboard.press("Enter")

    assert urlsplit(page.url).path == "/filings", page.url  # (the skip link's #main may ride along the redirect)
    assert page.locator("h1").inner_text() == ("Filings" if lang == "en" else "备案")


@pytest.mark.parametrize("lang", LANGS)
def test_every_tab_stop_on_a_filing_page_shows_focus(lang, open_context, filing_in):
    """The busiest page: every control is reachable by Tab, in order, and shows where the focus is."""
    filing_id = filing_in("changes_requested")
    page = open_context(lang).new_page()
    log_in(page, "zhengzhou")
    page.goto(f"/filings/{filing_id}")
    expected = page.evaluate(
        """() => [...document.querySelectorAll('a[href], button, input:not([type=hidden]), select, textarea')]
                 .filter(el => !el.disabled && el.getClientRects().length > 0 || el.classList.contains('skip-link'))
                 .length"""
    )
    seen = 0
    for _ in range(expected + 5):
        page.keyboard.press("Tab")
        focused = _focused(page)
        if focused["tag"] == "body":
            break
        _assert_focus_visible(focused)
        seen += 1
    assert seen == expected, f"Tab reached {seen} controls of {expected}"


@pytest.mark.parametrize("lang", LANGS)
def test_an_invalid_form_puts_the_keyboard_on_its_error_summary(lang, open_context):
    """After a refused save the focus starts on the error summary (no script needed), and its link for the bad
    e-mail takes the keyboard to that field."""
    page = open_context(lang).new_page()
    log_in(page, "zhengzhou")
    page.goto("/filings/new")
    page.fill(f"#{TD}contacts-0-email", "not-an-address")
    page.focus("button[name=save]")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert _focused(page)["id"] == "error-summary"
    page.keyboard.press("Tab")
    focused = page.evaluate("() => document.activeElement.getAttribute('href')")
    assert focused == f"#{TD}contacts-0-email", focused
    _assert_focus_visible(_focused(page))
    page.keyboard.press("Enter")
    focused = _focused(page)
    assert focused["id"] == f"{TD}contacts-0-email", f"the error link took the focus to {focused}"
    _assert_focus_visible(focused)
    assert page.get_attribute(f"#{TD}contacts-0-email", "aria-invalid") == "true"
    assert page.input_value(f"#{TD}contacts-0-email") == "not-an-address"  # what was typed is kept
