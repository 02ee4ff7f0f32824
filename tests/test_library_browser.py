"""A visitor uses the public library in a real browser (Debian's chromium through Playwright): searches, narrows
with filters, opens an entry, switches to English and to large text — checking axe and saving a screenshot at each
step (test-artifacts/screenshots/library-walk-*.png)."""

from __future__ import annotations

import copy

from tests.test_accessibility import base_url, browser, check_page, open_context  # noqa: F401 - fixtures


def _named(documents, name_zh: str, name_en: str, purpose: str) -> dict:
    document = copy.deepcopy(documents.technical_document)
    document["algorithm"]["name_zh"] = name_zh
    document["algorithm"]["name_en"] = name_en
    document["algorithm"]["purpose"] = purpose
    return document


def test_a_visitor_searches_filters_opens_an_entry_and_switches_language_and_text_size(
    open_context,  # noqa: F811
    filing_in,
    documents,
):
    filing_in(
        "approved",
        document=_named(documents, "低保资格辅助审核模型", "Minimum Allowance Check", "辅助审核城市低保申请。"),
    )
    filing_in(
        "approved",
        city_user="luoyang",
        document=_named(documents, "医保报销智能审核模型", "Medical Insurance Claims Review", "审核医保报销。"),
    )
    filing_in("under_review", document=_named(documents, "低保审查中模型", "Under Review", "低保，尚未决定。"))
    page = open_context("zh").new_page()

    page.goto("/")
    check_page(page, "library-walk-home", "zh")
    page.fill("#q", "低保")
    with page.expect_navigation():
        page.press("#q", "Enter")
    assert "q=" in page.url  # the query is in the address: it can be bookmarked and shared
    results = page.locator("main").inner_text()
    assert "低保资格辅助审核模型" in results
    assert "医保报销智能审核模型" not in results and "低保审查中模型" not in results  # only decided filings
    check_page(page, "library-walk-search", "zh")

    page.fill("#q", "")
    page.select_option("#city", "410300")
    with page.expect_navigation():
        page.click("form.library-search button.secondary")
    filtered = page.locator("main").inner_text()
    assert "医保报销智能审核模型" in filtered and "低保资格辅助审核模型" not in filtered
    check_page(page, "library-walk-filter", "zh")

    with page.expect_navigation():
        page.get_by_role("link", name="医保报销智能审核模型").first.click()
    assert "/library/" in page.url
    assert page.locator("h1").inner_text().startswith("医保报销智能审核模型")
    assert page.locator("#filing-number").inner_text().startswith("豫算备410300-")
    check_page(page, "library-walk-entry", "zh")

    with page.expect_navigation():
        page.click("form.language button")
    assert page.get_attribute("html", "lang") == "en"
    assert "Medical Insurance Claims Review" in page.locator("h1").inner_text()
    check_page(page, "library-walk-entry", "en")

    before = page.evaluate("getComputedStyle(document.body).fontSize")
    with page.expect_navigation():
        page.click("#display-toggle")
    assert "display-large" in (page.get_attribute("html", "class") or "")
    assert page.get_attribute("#display-toggle", "aria-pressed") == "true"
    after = page.evaluate("getComputedStyle(document.body).fontSize")
    assert float(after.rstrip("px")) > float(before.rstrip("px"))
    page.goto("/library")  # both choices persist from page to page
    assert page.get_attribute("html", "lang") == "en"
    assert "display-large" in (page.get_attribute("html", "class") or "")
    check_page(page, "library-walk-large-text", "en")
