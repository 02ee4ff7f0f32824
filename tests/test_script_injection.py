"""Script payloads in every free text a city team, a reviewer or the public can write are shown only as text.

Every free-text field of the technical document and the test report (found by trying a payload in each string of
the documents and keeping it where the schema accepts it), the decision's reasons and conditions and a withdrawn
proposal's reason, comments, the public's concern, an API token's label and an account's display name are filled
with payloads (``<script>``, attribute break-outs, ``</textarea>``, ``javascript:`` URLs, template syntax, and
spreadsheet formulas). The filing is taken to a public decision; then every public page, entry, feed, CSV and JSON
export (a crawl from ``/`` and every public GET route, as in test_library_privacy) and the staff pages are parsed:
no injected element, event attribute or ``javascript:`` link exists, no template was evaluated, the feed's texts
are plain text, and no CSV cell starts a formula.
"""

from __future__ import annotations

import copy
import csv
import io
import xml.etree.ElementTree as ET
from collections import deque
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import sqlalchemy as sa
from sqlmodel import Session

from registry.decision_log.models import LogEntry
from registry.filings.models import Filing
from schemas import validation as contracts
from tests.conftest import csrf_token
from tests.test_library_privacy import MAX_PAGES, _Links, _public_get_routes

# Each is a whole attack; the formula starts (= + - @) are for the CSV exports, the rest for the pages.
PAYLOADS = (
    "=1+1<script>alert(1)</script>\"><img src=x onerror=alert(2) id=xss-img></textarea><b id=xss-ta>{{7*'7'}}",
    "javascript:alert(3)//<script>alert(3)</script>'><b id=xss-js onclick=alert(3)>",
    "@SUM(1+1)<svg onload=alert(4) id=xss-svg></title></style><b id=xss-title>",
    "-2+3<iframe src=javascript:alert(5) id=xss-frame></iframe>{% print 7*'7' %}",
    "+cmd|' /C calc'!A0 '\"><a href=\"javascript:alert(6)\" id=xss-a>x</a>",
)
SHORT = '<script>alert(9)</script>"><b id=xss-short>'
EVALUATED = "7777777"  # what {{7*'7'}} renders to, were a text ever used as a template
ESCAPED = "&lt;script&gt;alert("
URL_ATTRIBUTES = {"href", "src", "action", "formaction", "xlink:href", "data", "poster", "background"}


class _Live(HTMLParser):
    """Collects what would run or render as markup if a payload escaped its text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "iframe", "object", "embed", "base"):
            self.found.append(f"<{tag}>")
        for name, value in attrs:
            value = value or ""
            if name.startswith("on"):
                self.found.append(f"<{tag} {name}=…>")
            if name in URL_ATTRIBUTES and "".join(value.split()).lower().startswith(("javascript:", "vbscript:")):
                self.found.append(f"<{tag} {name}={value[:30]}>")
            if name in ("id", "class", "name") and "xss" in value.lower():
                self.found.append(f"<{tag} {name}={value}>")

    handle_startendtag = handle_starttag


def live_markup(html: str) -> list[str]:
    """Elements and attributes in ``html`` that an injected payload would have made live (none in our pages: they
    run no script at all, so any script, event attribute or javascript: link is an injection)."""
    parser = _Live()
    parser.feed(html)
    parser.close()
    return parser.found


def test_the_checker_sees_every_payload_that_is_live_and_none_that_is_escaped():
    from markupsafe import escape

    for payload in (*PAYLOADS, SHORT):
        assert live_markup(f"<p>{payload}</p>"), payload
        if '"' in payload:
            assert live_markup(f'<input value="{payload}">'), payload  # an attribute break-out
        assert live_markup(f"<p>{escape(payload)}</p>") == []
        assert live_markup(f'<input value="{escape(payload)}">') == []
        assert live_markup(f"<textarea>{escape(payload)}</textarea>") == []


# --- filling every free text -------------------------------------------------------------------------------------


def _strings(node, path=()):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _strings(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _strings(value, (*path, index))
    elif isinstance(node, str):
        yield path


def _set(document, path, value) -> None:
    for key in path[:-1]:
        document = document[key]
    document[path[-1]] = value


def fill_free_text(schema: str, document: dict) -> tuple[dict, list[str]]:
    """``document`` with a payload in every string the schema takes free text in; returns it and their paths."""
    filled = copy.deepcopy(document)
    changed = []
    for n, path in enumerate(list(_strings(filled))):
        original = filled
        for key in path:
            original = original[key]
        for payload in (PAYLOADS[n % len(PAYLOADS)] + f" #{n}", SHORT + f"#{n}"):
            _set(filled, path, payload)
            if not contracts.validate(schema, filled):
                changed.append("/" + "/".join(map(str, path)))
                break
        else:
            _set(filled, path, original)  # not free text (a code, a date, an e-mail …)
    return filled, changed


def _documents(documents) -> tuple[dict, dict, list[str]]:
    technical = copy.deepcopy(documents.technical_document)
    technical["vendor"]["contact"] = "vendor desk"  # optional free text: present so it is filled too
    technical, td_fields = fill_free_text("technical-document", technical)
    report, tr_fields = fill_free_text("test-report", documents.test_report)
    return technical, report, td_fields + [f"/test_report{p}" for p in tr_fields]


# --- checking what is served ---------------------------------------------------------------------------------------


def check_answer(url: str, response) -> str:
    """Assert ``response`` shows the payloads only as inert text, by its type; returns its text."""
    body = response.get_data(as_text=True)
    mimetype = response.mimetype
    assert EVALUATED not in body, f"{url} evaluated a template written by a user"
    if mimetype == "text/html":
        assert live_markup(body) == [], f"{url} has injected markup: {live_markup(body)[:5]}"
    elif mimetype in ("application/atom+xml", "application/xml", "text/xml"):
        root = ET.fromstring(response.get_data())
        for element in root.iter():
            namespace = element.tag.split("}")[0].lstrip("{") if "}" in element.tag else ""
            assert namespace == "http://www.w3.org/2005/Atom", f"{url} has a foreign element {element.tag}"
            if element.tag.endswith(("}title", "}content", "}summary", "}subtitle", "}rights")):
                assert element.get("type") in (None, "text"), f"{url}: {element.tag} is {element.get('type')}"
    elif mimetype == "text/csv":
        for row in csv.reader(io.StringIO(body.lstrip("\ufeff"))):
            for cell in row:
                if cell[:1] in ("=", "+", "-", "@", "\t", "\r"):
                    float(cell)  # only a number may start so; a text would be run as a formula by a spreadsheet
    else:
        assert mimetype != "text/plain" or "<" not in body, f"{url}: markup served as text/plain"
    if mimetype != "text/html":
        assert response.headers.get("X-Content-Type-Options") == "nosniff", url
    return body


def _crawl(client, start: list[str], *, follow: bool = True) -> dict[str, str]:
    """GET every URL (and, from pages, the same-site links they show): ``{url: body}``, each checked."""
    queue, seen, bodies = deque(start), set(), {}
    while queue and len(seen) < MAX_PAGES:
        url = queue.popleft()
        if url in seen:
            continue
        seen.add(url)
        response = client.get(url)
        if response.status_code in (301, 302, 303, 307, 308):
            queue.append(urlsplit(response.headers["Location"]).path)
            continue
        assert response.status_code < 500, url
        bodies[url] = check_answer(url, response)
        if follow and response.status_code == 200 and response.mimetype == "text/html":
            links = _Links()
            links.feed(bodies[url])
            for link in links.links:
                parts = urlsplit(urljoin(url, link))
                if parts.netloc in ("", "localhost") and not parts.path.startswith(("/static/", "/logout")):
                    queue.append(parts.path + (f"?{parts.query}" if parts.query else ""))
    return bodies


def _login(app, username):
    client = app.test_client()
    page = client.get("/login")
    from tests.conftest import PASSWORD

    client.post(
        "/login",
        data={"username": username, "password": PASSWORD, "csrf_token": csrf_token(page.get_data(as_text=True))},
    )
    return client


def test_every_free_text_is_shown_inert_on_every_page_feed_and_export(app, api, filing_in, documents):
    technical, report, fields = _documents(documents)
    assert len(fields) >= 40, fields  # every free text of both documents took a payload
    for expected in ("/algorithm/name_zh", "/algorithm/purpose", "/vendor/name", "/vendor/contact", "/department"):
        assert expected in fields, f"{expected} took no payload"
    engine = app.extensions["registry"].engine
    with engine.begin() as connection:  # a display name is shown beside comments and decisions
        connection.execute(
            sa.text('UPDATE "user" SET display_name = :n WHERE username = :u'), {"n": SHORT, "u": "reviewer1"}
        )
    filing_id = filing_in("under_review", document=technical, report=report)
    city, reviewer = api("zhengzhou"), api("reviewer1")
    for client, body in ((city, PAYLOADS[0]), (reviewer, PAYLOADS[1])):
        assert client.post(f"/api/v1/filings/{filing_id}/comments", json={"body": body}).status_code == 201
    first = reviewer.post(
        f"/api/v1/filings/{filing_id}/decisions", json={"outcome": "rejected", "reasons": [PAYLOADS[2]]}
    )
    assert first.status_code == 201, first.get_json()
    withdrawn = reviewer.post(f"/api/v1/decisions/{first.get_json()['id']}/withdraw", json={"reason": PAYLOADS[3]})
    assert withdrawn.status_code == 200, withdrawn.get_json()
    proposal = reviewer.post(
        f"/api/v1/filings/{filing_id}/decisions",
        json={
            "outcome": "approved_with_conditions",
            "conditions": [PAYLOADS[4], PAYLOADS[0]],
            "reasons": [PAYLOADS[1], PAYLOADS[2]],
            "note": PAYLOADS[3],
        },
    )
    assert proposal.status_code == 201, proposal.get_json()
    decision_id = proposal.get_json()["id"]
    countersigned = api("reviewer2").post(f"/api/v1/decisions/{decision_id}/countersign")
    assert countersigned.status_code == 200, countersigned.get_json()
    with Session(engine) as session:
        filing = session.get(Filing, filing_id)
        log_size = session.exec(sa.select(sa.func.count()).select_from(LogEntry)).one()[0]
    assert filing.state == "approved_with_conditions" and filing.filing_number

    public = app.test_client()
    page = public.get(f"/library/{filing.filing_number}/concern")
    sent = public.post(
        f"/library/{filing.filing_number}/concern",
        data={"csrf_token": csrf_token(page.get_data(as_text=True)), "body": PAYLOADS[0] + " 请复核。", "contact": ""},
    )
    assert sent.status_code == 303, sent.get_data(as_text=True)[:500]

    # The public: every page, entry, feed and export.
    start = ["/", *_public_get_routes(app, [filing], log_size)]
    bodies = _crawl(app.test_client(), start)
    entry = bodies[f"/library/{filing.filing_number}"]
    assert ESCAPED in entry and "&lt;svg onload" in entry  # the payloads are there, as text
    assert any(u.endswith(".csv") for u in bodies) and any(u.endswith(".atom") for u in bodies)
    feed = ET.fromstring(app.test_client().get("/library/feed.atom").get_data())
    texts = " ".join(e.text or "" for e in feed.iter())
    assert "<script>alert(" in texts  # kept whole, as the text it is
    table = app.test_client().get("/library.csv").get_data(as_text=True)
    assert "'=1+1<script>" in table or "'@SUM" in table or "'-2+3" in table  # neutralised, not dropped

    # The staff: the filing page (comments, concern, decisions), lists, letter, inbox and account pages.
    staff_urls = [
        f"/filings/{filing_id}",
        "/filings",
        f"/decisions/{decision_id}/letter",
        "/inbox",
        "/account",
        "/reaudits",
    ]
    for username in ("reviewer1", "zhengzhou", "admin"):
        client = _login(app, username)
        token = csrf_token(client.get("/account").get_data(as_text=True))
        client.post("/account", data={"label": SHORT, "csrf_token": token})
        staff = _crawl(client, staff_urls, follow=False)
        detail = staff[f"/filings/{filing_id}"]
        assert ESCAPED in detail, f"the filing page shows {username} no payload"
    reviewer_page = _crawl(_login(app, "reviewer1"), [f"/filings/{filing_id}"], follow=False)
    assert "请复核" in reviewer_page[f"/filings/{filing_id}"]  # the public's concern is shown to the reviewers


def test_edit_form_keeps_a_payload_inside_its_field(app, browser_as, filing_in, documents):
    """The draft's own form puts the saved text back in inputs and text areas: it must stay inside them."""
    technical, report, _fields = _documents(documents)
    filing_id = filing_in("draft", document=technical, report=report)
    html = browser_as("zhengzhou").get(f"/filings/{filing_id}/edit").get_data(as_text=True)
    assert live_markup(html) == []
    assert "&lt;/textarea&gt;" in html


def test_a_redirect_target_never_leaves_the_site(app, browser_as):
    """The language and display switches and the login send the browser back to ``next``: only a path of ours."""
    hostile = [
        "javascript:alert(1)",
        "//evil.example/",
        "/\\evil.example/",
        "/\t/evil.example/",
        "/\n/evil.example/",
        "https://evil.example/",
        "\\\\evil.example",
    ]
    client = app.test_client()
    token = csrf_token(client.get("/login").get_data(as_text=True))
    for target in hostile:
        for url, form in (("/language", {"lang": "en"}), ("/display", {"display": "large"})):
            response = client.post(url, data=form | {"next": target, "csrf_token": token})
            location = response.headers.get("Location", "")
            assert response.status_code in (302, 303), (url, target)
            parts = urlsplit(location)
            assert not parts.scheme and not parts.netloc and not location.startswith(("//", "/\\")), (
                f"{url} next={target!r} → {location!r}"
            )
