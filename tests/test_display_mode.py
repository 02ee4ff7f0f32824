"""Large text and high contrast: a switch in every page's header that works without JavaScript, remembers the
choice in a cookie, and puts the class ``display-large`` on <html> that registry/static/display.css styles."""

from __future__ import annotations

import re

import pytest

from tests.conftest import csrf_token
from tests.test_accessibility import base_url, browser, open_context  # noqa: F401 - fixtures

TOGGLE = re.compile(r'<button type="submit" id="display-toggle" name="display" value="(\w+)" aria-pressed="(\w+)">')


def _toggle(html: str) -> tuple[str, str]:
    match = TOGGLE.search(html)
    assert match, "the page has no display switch"
    return match.group(1), match.group(2)


def _switch(client, page_url: str, value: str):
    page = client.get(page_url).get_data(as_text=True)
    return client.post("/display", data={"csrf_token": csrf_token(page), "display": value, "next": page_url})


def test_the_switch_is_on_every_page_and_says_it_is_off_at_first(app):
    client = app.test_client()
    for url in ("/", "/login", "/library"):
        page = client.get(url).get_data(as_text=True)
        assert _toggle(page) == ("large", "false")
        assert 'class="display-large"' not in page
        assert 'href="/static/display.css"' in page


def test_large_text_persists_across_pages_until_switched_back(app, browser_as, filing_in):
    client = app.test_client()
    response = _switch(client, "/login?next=/filings", "large")
    assert response.status_code == 303 and response.headers["Location"] == "/login?next=/filings"
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("display=large;") and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Max-Age=31536000" in cookie  # remembered for a year

    for url in ("/", "/login", "/library"):
        page = client.get(url).get_data(as_text=True)
        assert re.search(r'<html lang="[^"]+" class="display-large">', page), url
        assert _toggle(page) == ("standard", "true")

    response = _switch(client, "/", "standard")
    assert response.status_code == 303
    page = client.get("/login").get_data(as_text=True)
    assert 'class="display-large"' not in page and _toggle(page) == ("large", "false")


def test_the_choice_holds_for_logged_in_pages_and_in_english_too(app, browser_as, filing_in):
    filing_id = filing_in("submitted")
    client = browser_as("reviewer1")
    _switch(client, "/filings", "large")
    page = client.get(f"/filings/{filing_id}?lang=en").get_data(as_text=True)
    assert '<html lang="en" class="display-large">' in page
    assert ">Large text and high contrast</button>" in page


def test_the_switch_needs_its_csrf_token_and_only_goes_back_inside_the_registry(app):
    client = app.test_client()
    assert client.post("/display", data={"display": "large", "next": "/"}).status_code == 400
    token = csrf_token(client.get("/").get_data(as_text=True))
    for target in ("//evil.example/", "https://evil.example/", "/\\evil.example", ""):
        response = client.post("/display", data={"csrf_token": token, "display": "large", "next": target})
        assert response.status_code == 303 and response.headers["Location"] == "/", target


def test_an_unknown_value_changes_nothing(app):
    client = app.test_client()
    response = _switch(client, "/", "huge")
    assert response.status_code == 303
    assert not any(c.startswith("display=") for c in response.headers.getlist("Set-Cookie"))
    assert 'class="display-large"' not in client.get("/").get_data(as_text=True)


def test_the_stylesheet_makes_the_text_larger_and_the_focus_ring_thicker(app):
    with app.test_client().get("/static/display.css") as response:
        assert response.status_code == 200
        css = response.get_data(as_text=True)
    assert re.search(r"html\.display-large\s*\{[^}]*font-size:\s*125%", css)
    assert re.search(r"html\.display-large :focus-visible\s*\{[^}]*outline:\s*4px solid", css)


# --- in a real browser ---------------------------------------------------------------------------------------------


def _computed(page, selector: str, prop: str) -> str:
    return page.evaluate(f"() => getComputedStyle(document.querySelector({selector!r})).{prop}")


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_a_reader_turns_on_large_text_with_the_keyboard_and_it_stays_on(lang, open_context):  # noqa: F811
    page = open_context(lang).new_page()
    page.goto("/login")
    assert _computed(page, "html", "fontSize") == "16px"
    assert page.get_attribute("#display-toggle", "aria-pressed") == "false"

    page.focus("#display-toggle")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.url.endswith("/login")
    assert page.get_attribute("html", "class") == "display-large"
    assert _computed(page, "html", "fontSize") == "20px"
    assert page.get_attribute("#display-toggle", "aria-pressed") == "true"

    page.goto("/library")  # another page, later: still large
    assert _computed(page, "html", "fontSize") == "20px"
    page.focus("#display-toggle")
    assert _computed(page, "#display-toggle", "outlineWidth") == "4px"
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert _computed(page, "html", "fontSize") == "16px"
    assert page.get_attribute("#display-toggle", "aria-pressed") == "false"
