"""Nothing private leaks from the public library: a crawl of every page and export an anonymous visitor can reach.

Private things are planted with unique markers — contacts and the vendor's contact in the technical document,
a draft's and an in-review filing's names, comments and reviewer-only notes, a decision's reviewer note, a
withdrawn proposal's reason, a concern's contact, accounts' e-mail addresses — and the crawl from ``/`` (every
same-site link, every public GET route of the app with its parameters filled in, and every export) must show none
of them, nor a model file, nor a row of reference data.
"""

from __future__ import annotations

import copy
import re
from collections import deque
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import sqlalchemy as sa
from sqlmodel import Session

from audits import reference
from registry.access import allowed_roles
from registry.authz import PUBLIC
from registry.decision_log.models import LogEntry
from registry.filings.models import Filing

MARKERS = {
    "contact_name": "私密联系人甲",
    "contact_email": "secret.contact@leak.example.cn",
    "contact_phone": "0371-9999 1234",
    "vendor_contact": "vendor.secret@leak.example.cn",
    "draft_name": "草稿算法不应公开",
    "review_name": "审查中算法不应公开",
    "comment": "城市评论不应公开XYZ",
    "reviewer_note": "审查员内部备注不应公开",
    "decision_note": "决定内部备注不应公开",
    "withdraw_reason": "撤回理由不应公开",
    "account_email": "reviewer.private@leak.example.cn",
    "concern_contact": "concern.person@leak.example.cn",
}
MAX_PAGES = 400


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("href", "src") and value:
                self.links.append(value)


def _document(documents, name: str) -> dict:
    document = copy.deepcopy(documents.technical_document)
    document["algorithm"]["name_zh"] = name
    document["contacts"] = [
        {
            "name": MARKERS["contact_name"],
            "role": "业务负责人",
            "email": MARKERS["contact_email"],
            "phone": MARKERS["contact_phone"],
        }
    ]
    document["vendor"] = {"name": "某某科技有限公司", "contact": MARKERS["vendor_contact"]}
    return document


def _plant(app, api, filing_in, documents) -> list[Filing]:
    engine = app.extensions["registry"].engine
    with engine.begin() as connection:
        connection.execute(sa.text('UPDATE "user" SET email = :e'), {"e": MARKERS["account_email"]})
    filing_in("draft", document=_document(documents, MARKERS["draft_name"]))
    reviewing = filing_in("under_review", document=_document(documents, MARKERS["review_name"]))
    approved = filing_in("approved", document=_document(documents, "公开的算法甲"))
    suspended = filing_in("suspended", document=_document(documents, "公开的算法乙"))
    rejected = filing_in("rejected", document=_document(documents, "公开的算法丙"))
    for filing_id in (reviewing, approved):
        assert api("zhengzhou").post(
            f"/api/v1/filings/{filing_id}/comments", json={"body": MARKERS["comment"]}
        ).status_code in (200, 201)
        assert api("reviewer1").post(
            f"/api/v1/filings/{filing_id}/comments", json={"body": MARKERS["reviewer_note"], "reviewer_only": True}
        ).status_code in (200, 201)
    proposal = api("reviewer1").post(
        f"/api/v1/filings/{reviewing}/decisions", json={"outcome": "approved", "note": MARKERS["decision_note"]}
    )
    assert proposal.status_code == 201, proposal.get_json()
    withdrawn = api("reviewer1").post(
        f"/api/v1/decisions/{proposal.get_json()['id']}/withdraw", json={"reason": MARKERS["withdraw_reason"]}
    )
    assert withdrawn.status_code == 200, withdrawn.get_json()
    with Session(engine, expire_on_commit=False) as session:
        public = [session.get(Filing, i) for i in (approved, suspended, rejected)]
    client = app.test_client()
    for filing in public:
        key = filing.filing_number or str(filing.id)
        page = client.get(f"/library/{key}/concern")
        if page.status_code == 200:  # the concern form (its contact is for the reviewers only)
            token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page.get_data(as_text=True))
            client.post(
                f"/library/{key}/concern",
                data={
                    "csrf_token": token.group(1) if token else "",
                    "body": "这个算法对我的申请作出了不公平的决定。",
                    "contact": MARKERS["concern_contact"],
                },
            )
    return public


def _public_get_routes(app, public: list[Filing], log_size: int) -> list[str]:
    """Every GET route open to the public, with its parameters filled from the public filings."""
    urls = []
    for rule in app.url_map.iter_rules():
        if "GET" not in rule.methods or rule.endpoint == "static":
            continue
        if allowed_roles(app, rule.endpoint) != frozenset({PUBLIC}):
            continue
        for filing in public:
            url = rule.rule
            url = url.replace("<filing_number>", filing.filing_number or str(filing.id))
            url = url.replace("<path:filing_number>", filing.filing_number or str(filing.id))
            url = url.replace("<int:index>", "0").replace("<name>", "decision-log-entry")
            if "<" not in url:
                urls.append(url)
    extra = [f"/api/v1/log/entries?start=0&end={log_size}", "/library?q=算法", "/api/v1/library?per_page=100"]
    return list(dict.fromkeys(urls + extra))


def test_no_page_or_export_shows_anything_private(app, api, filing_in, documents):
    public = _plant(app, api, filing_in, documents)
    with Session(app.extensions["registry"].engine) as session:
        log_size = session.exec(sa.select(sa.func.count()).select_from(LogEntry)).one()[0]
    german_rows = [
        line.strip()
        for line in (reference.library_folder() / "german.data").read_text().splitlines()[:50]
        if line.strip()
    ]
    client = app.test_client()  # anonymous throughout
    queue = deque(["/", *_public_get_routes(app, public, log_size)])
    seen: set[str] = set()
    fetched = 0
    while queue and fetched < MAX_PAGES:
        url = queue.popleft()
        if url in seen:
            continue
        seen.add(url)
        response = client.get(url)
        fetched += 1
        if response.status_code in (301, 302, 303, 307, 308):
            queue.append(urlsplit(response.headers["Location"]).path)
            continue
        body = response.get_data(as_text=True) if response.mimetype.startswith(("text", "application")) else ""
        for what, marker in MARKERS.items():
            assert marker not in body, f"{url} shows the {what} ({marker})"
        if not url.startswith(("/api/v1/openapi.json", "/schemas/")):  # those describe routes, they link nothing
            assert "/attachments" not in body and "/files/" not in body, f"{url} links to a stored file"
        for row in german_rows:
            assert row not in body, f"{url} shows a row of reference data"
        if response.status_code == 200 and response.mimetype == "text/html":
            parser = _Links()
            parser.feed(body)
            for link in parser.links:
                target = urljoin(url, link)
                parts = urlsplit(target)
                if (
                    parts.netloc in ("", "localhost")
                    and parts.path.startswith("/")
                    and not parts.path.startswith(("/static/", "/login", "/logout"))
                ):
                    queue.append(parts.path + (f"?{parts.query}" if parts.query else ""))
    assert fetched >= 10  # the crawl really went through the library, its entries and exports
    assert any(url.startswith("/library/") for url in seen)
