"""The public library's page cache (registry.library.cache, page_cache): a page made before a decision is never
served after it, and a cached page still carries each reader's own CSRF token.

On SQLite and PostgreSQL (the ``app`` fixture); every read is an anonymous visitor's, as under load.
"""

from __future__ import annotations

import re
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

from flask import request
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlmodel import Session

from registry import create_app
from registry.accounts import service as accounts
from registry.db import utcnow
from registry.decision_log import keys as log_keys
from registry.decisions import service as decisions
from registry.decisions.models import DecisionState, Outcome
from registry.filings import service as filings
from registry.filings.lifecycle import Action
from registry.filings.models import Filing
from registry.library import cache, page_cache, public, shared_pages
from registry.library import views as library_views
from tests.conftest import csrf_token
from tests.test_reaudit import _run_reaudit, due_filing  # noqa: F401 - fixture

_SAME_INSTANCE = ("TESTING", "INSTANCE_PATH", "DATABASE_URL", "SECRET_KEY", "LOG_SIGNING_KEY_FILE")
PAGES = ("/library", "/api/v1/library", "/library/statistics", "/api/v1/library/statistics")


def _actor(session: Session, username: str):
    return accounts.actor_for(accounts.get_user_by_name(session=session, username=username))


def _approve(app, filing_id: int) -> str:
    """Approve a filing under review through the decision service (countersigned when its tier needs it)."""
    with Session(app.extensions["registry"].engine, expire_on_commit=False) as s:
        decision = decisions.propose(
            session=s, actor=_actor(s, "reviewer1"), filing_id=filing_id, outcome=Outcome.APPROVED
        )
        if decision.state == DecisionState.PROPOSED:
            decisions.countersign(session=s, actor=_actor(s, "reviewer2"), decision_id=decision.id)
        s.commit()
        return s.get(Filing, filing_id).filing_number


def _answered_from_cache(app) -> int:
    """How many answers came from this process's page cache: its recent pages as they are, or the compressed ones."""
    engine = app.extensions["registry"].engine
    return cache.for_engine(engine).hits + cache.unpacked_for(engine).hits


def _statistics(client) -> int:
    return client.get("/api/v1/library/statistics").get_json()["public_filings"]


def test_a_decision_shows_at_once_on_every_cached_page(app, filing_in):
    published = filing_in("approved")
    waiting = filing_in("under_review")
    reader = app.test_client()
    for _ in range(2):  # made, then served from the cache
        pages = {url: reader.get(url).get_data(as_text=True) for url in PAGES}
    assert _answered_from_cache(app) >= len(PAGES)
    assert _statistics(reader) == 1
    assert reader.get("/api/v1/library").get_json()["total"] == 1
    hits = _answered_from_cache(app)

    number = _approve(app, waiting)

    assert number and number not in pages["/library"] and number not in pages["/api/v1/library"]
    assert number in reader.get("/library").get_data(as_text=True)
    assert reader.get("/api/v1/library").get_json()["total"] == 2
    assert _statistics(reader) == 2
    assert 'id="by-state"' in reader.get("/library/statistics").get_data(as_text=True)
    assert _answered_from_cache(app) == hits  # every one of them made again, none served from before the decision

    # A later step (a suspension, also logged) shows on the cached entry page and in the API at once.
    with Session(app.extensions["registry"].engine) as s:
        old_number = s.get(Filing, published).filing_number
    entry = f"/api/v1/library/{quote(old_number)}"
    assert reader.get(entry).get_json()["state"] == "approved"
    assert reader.get(entry).get_json()["state"] == "approved"  # cached
    with Session(app.extensions["registry"].engine) as s:
        filings.transition(
            session=s, actor=_actor(s, "reviewer1"), filing_id=published, action=Action.SUSPEND, reason="drift"
        )
        s.commit()
    assert reader.get(entry).get_json()["state"] == "suspended"
    assert "suspended" in reader.get(f"/library/{quote(old_number)}?lang=en").get_data(as_text=True).lower()


def _result_row(page: str, number: str) -> str:
    """The list's row of the filing ``number``."""
    start = page.rindex('<li class="result">', 0, page.index(quote(number)))
    return page[start : page.index("</li>", start)]


def test_a_result_row_is_written_once_for_every_list_that_shows_it_and_again_after_a_step(app, filing_in):
    published = filing_in("approved")
    with Session(app.extensions["registry"].engine) as s:
        number = s.get(Filing, published).filing_number
    rows = cache.fragments_for(app.extensions["registry"].engine)
    reader = app.test_client()
    first = reader.get("/library?lang=en").get_data(as_text=True)
    kept = rows.hits
    other = reader.get("/library?lang=en&city=410100&sort=name").get_data(as_text=True)  # another page, same row
    assert rows.hits == kept + 1
    assert _result_row(other, number) == _result_row(first, number) and "Approved" in _result_row(first, number)
    chinese = reader.get("/library?city=410100&lang=zh_CN").get_data(as_text=True)  # another language: its own row
    assert "<dt>决定日期</dt>" in _result_row(chinese, number) and "Decided" not in _result_row(chinese, number)

    with Session(app.extensions["registry"].engine) as s:  # a step: the row is written again, at once
        filings.transition(
            session=s, actor=_actor(s, "reviewer1"), filing_id=published, action=Action.SUSPEND, reason="drift"
        )
        s.commit()
    after = reader.get("/library?lang=en&city=410100&sort=name").get_data(as_text=True)
    assert "Suspended" in _result_row(after, number) and "decision: Approved" in _result_row(after, number)


def test_a_cached_page_carries_each_readers_own_csrf_token(app, filing_in):
    filing_in("approved")
    first, second = app.test_client(), app.test_client()
    page_one = first.get("/library").get_data(as_text=True)
    hits = _answered_from_cache(app)
    page_two = second.get("/library").get_data(as_text=True)
    assert _answered_from_cache(app) == hits + 1  # the second reader got the cached page…
    token_one, token_two = csrf_token(page_one), csrf_token(page_two)
    assert token_one != token_two  # …with a token of their own session
    assert not re.search(r"csrfslot[0-9a-f]{32}", page_two)
    # Each token works for its own reader (the language switch is a CSRF-protected form), not for the other.
    answer = second.post("/language", data={"lang": "en", "next": "/library", "csrf_token": token_two})
    assert answer.status_code in (302, 303)
    refused = first.post("/language", data={"lang": "en", "next": "/library", "csrf_token": token_two})
    assert refused.status_code == 400
    # The English page is cached apart from the Chinese one.
    assert 'lang="en"' in second.get("/library").get_data(as_text=True)[:300]


def test_a_logged_in_reader_never_gets_a_cached_page(app, filing_in, browser_as):
    filing_in("approved")
    app.test_client().get("/library")
    hits = _answered_from_cache(app)
    page = browser_as("reviewer1").get("/library").get_data(as_text=True)
    assert "reviewer1" in page and _answered_from_cache(app) == hits


def test_a_returning_reader_is_answered_before_the_app_with_the_views_own_headers(app, filing_in):
    filing_in("approved")
    entered = []
    app.before_request(lambda: entered.append(request.path))
    reader = app.test_client()
    made = reader.get("/library")  # a first visit: the app makes the page and the reader's session
    again = reader.get("/library")  # the session's cookie now comes along: answered from the cache
    assert entered == ["/library"]
    assert again.status_code == 200
    for header in ("Content-Security-Policy", "X-Frame-Options", "X-Content-Type-Options", "Content-Type"):
        assert again.headers[header] == made.headers[header]
    assert "Set-Cookie" not in again.headers
    assert int(again.headers["Content-Length"]) == len(again.get_data())
    token = csrf_token(again.get_data(as_text=True))
    assert token and not re.search(r"csrfslot[0-9a-f]{32}", again.get_data(as_text=True))
    # The token it carries is the reader's own: the language switch (a CSRF-protected form) takes it.
    answer = reader.post("/language", data={"lang": "en", "next": "/library", "csrf_token": token})
    assert answer.status_code in (302, 303)
    assert 'lang="en"' in reader.get("/library").get_data(as_text=True)[:300]


def test_a_large_page_is_kept_compressed_and_served_again_byte_for_byte(app, filing_in):
    number = _approve(app, filing_in("under_review"))
    entered = []
    app.before_request(lambda: entered.append(request.path))
    reader = app.test_client()
    reader.get("/library")  # a session, as a browser keeps one
    store = cache.for_engine(app.extensions["registry"].engine)
    for url in (f"/api/v1/library/{quote(number)}", f"/library/{quote(number)}"):
        kept_before = store._bytes
        made = reader.get(url)
        assert made.status_code == 200 and len(made.get_data()) > page_cache._PACK_FROM, url
        again = reader.get(url)
        assert store._bytes - kept_before < len(made.get_data()) / 2, url  # kept compressed
        cache.unpacked_for(app.extensions["registry"].engine)._items.clear()  # as when others' asks pushed it out
        unpacked = reader.get(url)  # from the compressed copy
        for answer in (again, unpacked):
            if url.startswith("/api"):
                assert answer.get_data() == made.get_data()
            else:  # the same page, with the reader's token in its place
                token = re.compile(rb'name="csrf_token" value="[^"]+"')
                assert token.sub(b"", answer.get_data()) == token.sub(b"", made.get_data())
            assert int(answer.headers["Content-Length"]) == len(answer.get_data())
    assert len(entered) == 3  # the first visit and the two pages made once each; the rest came from the cache


def test_a_reader_with_a_message_waiting_or_logged_in_goes_into_the_app(app, filing_in, browser_as):
    filing_in("approved")
    entered = []
    app.before_request(lambda: entered.append(request.path))
    reviewer = browser_as("reviewer1")
    reviewer.get("/library")
    before = len(entered)
    page = reviewer.get("/library").get_data(as_text=True)
    assert len(entered) == before + 1 and "reviewer1" in page
    reader = app.test_client()
    reader.get("/library")
    with reader.session_transaction() as s:
        s["_flashes"] = [("message", "Thank you")]
    before = len(entered)
    assert "Thank you" in reader.get("/library").get_data(as_text=True)
    assert len(entered) == before + 1


def test_a_decision_taken_by_another_process_shows_within_a_second(app, filing_in):
    filing_in("approved")
    waiting = filing_in("under_review")
    reader = app.test_client()
    assert reader.get("/api/v1/library").get_json()["total"] == 1
    assert reader.get("/api/v1/library").get_json()["total"] == 1  # cached
    # Another process: its own engine on the same database, whose commits this process does not hear of.
    engine = app.extensions["registry"].engine
    other = create_engine(engine.url)
    log_keys.configure(other, lambda: log_keys.for_engine(engine))
    event.remove(Engine, "commit", cache._Commits.seen)
    try:
        with Session(other, expire_on_commit=False) as s:
            decision = decisions.propose(
                session=s, actor=_actor(s, "reviewer1"), filing_id=waiting, outcome=Outcome.APPROVED
            )
            if decision.state == DecisionState.PROPOSED:
                decisions.countersign(session=s, actor=_actor(s, "reviewer2"), decision_id=decision.id)
            s.commit()
    finally:
        event.listen(Engine, "commit", cache._Commits.seen)
        other.dispose()
    time.sleep(cache.VERSION_MAX_AGE + 0.1)
    assert reader.get("/api/v1/library").get_json()["total"] == 2


def test_a_page_one_worker_process_made_is_served_by_another_until_the_library_changes(app, filing_in, monkeypatch):
    number = _approve(app, filing_in("under_review"))
    # Another worker process of the same machine: its own app, engine and memory, the same database and instance.
    other = create_app({key: app.config[key] for key in _SAME_INSTANCE})
    made = []
    real_entry = public.entry
    monkeypatch.setattr(public, "entry", lambda *args: made.append(args[2].id) or real_entry(*args))
    try:
        url = f"/library/{quote(number)}"
        first = app.test_client().get(url)
        second = other.test_client().get(url)  # a first visit there: into the app, which finds the page made
        assert first.status_code == second.status_code == 200
        assert len(made) == 1
        token = re.compile(rb'name="csrf_token" value="[^"]+"')
        assert token.sub(b"", second.get_data()) == token.sub(b"", first.get_data())
        assert (Path(app.instance_path) / shared_pages.FILE_NAME).exists()

        # A decision taken in the first process: the second never serves the page made before it.
        assert other.test_client().get("/api/v1/library").get_json()["total"] == 1
        _approve(app, filing_in("under_review"))
        time.sleep(cache.VERSION_MAX_AGE + 0.1)  # the second process reads the library's version again
        assert other.test_client().get("/api/v1/library").get_json()["total"] == 2
    finally:
        other.extensions["registry"].engine.dispose()


def test_without_sharing_each_process_keeps_its_pages_to_itself(app, filing_in):
    app.config["LIBRARY_CACHE_SHARED"] = False
    filing_in("approved")
    assert app.test_client().get("/library").status_code == 200
    assert not (Path(app.instance_path) / shared_pages.FILE_NAME).exists()


def test_the_start_page_is_cached_for_readers_and_never_for_staff(app, filing_in, browser_as):
    filing_in("approved")
    reader = app.test_client()
    first = reader.get("/").get_data(as_text=True)
    hits = _answered_from_cache(app)
    again = reader.get("/")
    assert again.status_code == 200 and _answered_from_cache(app) == hits + 1
    assert again.get_data(as_text=True).replace(csrf_token(again.get_data(as_text=True)), "") == first.replace(
        csrf_token(first), ""
    )
    assert browser_as("reviewer1").get("/").status_code == 302  # staff go to their filings, as before


def test_a_cached_entry_page_marks_its_reaudit_overdue_once_the_date_passes(app, filing_in, monkeypatch):
    filing_id = filing_in("approved")
    with Session(app.extensions["registry"].engine) as s:
        filing = s.get(Filing, filing_id)
        number, due = filing.filing_number, filing.next_audit_due
    assert due is not None and due > utcnow()
    clock = {"now": utcnow()}
    monkeypatch.setattr(library_views, "utcnow", lambda: clock["now"])
    monkeypatch.setattr(page_cache, "utcnow", lambda: clock["now"])
    reader = app.test_client()
    reader.get("/library")  # a reader with a session, as a browser: the front door answers their next asks

    def reaudit_line() -> str:
        page = reader.get(f"/library/{quote(number, safe='')}?lang=en").get_data(as_text=True)
        return page[page.index('id="next-reaudit"') :].split("</dd>")[0]

    assert "overdue" not in reaudit_line()
    hits = _answered_from_cache(app)
    clock["now"] = due - timedelta(seconds=1)
    assert (
        "overdue" not in reaudit_line() and _answered_from_cache(app) == hits + 1
    )  # nothing has changed: served again
    clock["now"] = due + timedelta(seconds=1)  # the date passes, with nothing written to the database
    assert 'class="overdue"' in reaudit_line()


def test_a_search_is_ranked_once_for_its_pages_its_languages_and_the_api(app, filing_in):
    for _ in range(4):
        filing_in("approved")
    engine = app.extensions["registry"].engine
    name = app.test_client().get("/api/v1/library").get_json()["items"][0]["name_zh"]
    rankings = []

    def ranking(_connection, _cursor, statement, *_args):
        if "library_search_fts" in statement or "search_vector" in statement:  # SQLite's FTS5, PostgreSQL's tsvector
            rankings.append(statement)

    def api_pages(client) -> list[dict]:
        return [
            client.get("/api/v1/library", query_string={"q": name, "per_page": 1, "page": n}).get_json()
            for n in range(1, 5)
        ]

    event.listen(engine, "before_cursor_execute", ranking)
    try:
        reader = app.test_client()
        pages = api_pages(reader)
        html = {
            lang: reader.get("/library", query_string={"q": name, "lang": lang}).get_data(as_text=True)
            for lang in ("zh_CN", "en")
        }
    finally:
        event.remove(engine, "before_cursor_execute", ranking)
    assert len(rankings) == 1, rankings  # four pages of the API and the page in both languages: one ranking
    assert all(page["total"] == 4 for page in pages)
    numbers = [page["items"][0]["filing_number"] for page in pages]
    assert len(set(numbers)) == 4 and all(number in html["en"] and number in html["zh_CN"] for number in numbers)

    # The same pages as a process that keeps nothing gives.
    uncached = create_app({key: app.config[key] for key in _SAME_INSTANCE} | {"LIBRARY_CACHE_SECONDS": 0})
    try:
        expected = api_pages(uncached.test_client())
    finally:
        uncached.extensions["registry"].engine.dispose()
    assert [(p["total"], p["items"]) for p in pages] == [(p["total"], p["items"]) for p in expected]


def test_a_decision_shows_at_once_in_a_search_already_ranked(app, filing_in):
    filing_in("approved")
    waiting = filing_in("under_review")
    reader = app.test_client()
    name = reader.get("/api/v1/library").get_json()["items"][0]["name_zh"]
    assert reader.get("/api/v1/library", query_string={"q": name}).get_json()["total"] == 1
    number = _approve(app, waiting)
    found = reader.get("/api/v1/library", query_string={"q": name, "per_page": 5}).get_json()  # another page address
    assert found["total"] == 2 and number in [item["filing_number"] for item in found["items"]]


def test_a_page_kept_unpacked_is_served_no_longer_than_the_one_it_was_unpacked_from(app, filing_in, monkeypatch):
    app.config["LIBRARY_CACHE_SECONDS"] = 60  # before the first ask: the process's caches take it when made
    app.config["LIBRARY_CACHE_SHARED"] = False  # this process's memory alone (the shared file reads the wall clock)
    filing_in("approved")
    clock = {"now": 1000.0}
    monkeypatch.setattr(cache.time, "monotonic", lambda: clock["now"])
    made = []
    app.before_request(lambda: made.append(request.path))
    reader = app.test_client()
    reader.get("/library")  # a session, as a browser keeps one
    made.clear()
    engine = app.extensions["registry"].engine

    assert reader.get("/api/v1/library").status_code == 200 and made == ["/api/v1/library"]
    cache.unpacked_for(engine)._items.clear()  # pushed out by others' asks
    clock["now"] += 50
    assert reader.get("/api/v1/library").status_code == 200 and len(made) == 1  # unpacked again, 50 s old
    clock["now"] += 5
    assert reader.get("/api/v1/library").status_code == 200 and len(made) == 1  # the unpacked copy, 55 s old
    clock["now"] += 6  # 61 s after it was made: neither copy is served
    assert reader.get("/api/v1/library").status_code == 200 and len(made) == 2


def test_steps_of_filings_not_yet_public_leave_the_public_pages_cached_but_not_the_standings(app, filing_in):
    number = _approve(app, filing_in("under_review"))
    public_pages = (*PAGES, f"/library/{quote(number)}", f"/api/v1/library/{quote(number)}")
    standings = ("/library/standings", "/api/v1/library/standings")
    made = []
    app.before_request(lambda: made.append(request.path))
    reader = app.test_client()
    reader.get("/library")  # a session, as a browser keeps one
    for url in (*public_pages, *standings):
        assert reader.get(url).status_code == 200, url
    made.clear()

    filing_in("changes_requested")  # a draft, submitted, reviewed and sent back: none of it public yet

    for url in (*public_pages, *standings):
        assert reader.get(url).status_code == 200, url
    assert made == list(standings)  # the standings count requests for changes; no other page shows them


def test_a_reaudit_that_finishes_shows_at_once_on_the_cached_entry(app, engine, due_filing, monkeypatch):  # noqa: F811
    number = due_filing.filing_number
    reader = app.test_client()
    reader.get("/library")
    entry_url, api_url = f"/library/{quote(number)}?lang=en", f"/api/v1/library/{quote(number)}"
    before = reader.get(api_url).get_json()
    assert reader.get(entry_url).status_code == 200 and reader.get(api_url).get_json() == before  # now cached

    job = _run_reaudit(app, engine, monkeypatch, due_filing, "meets")  # queued by the schedule, run by a worker

    after = reader.get(api_url).get_json()
    assert job.id in [audit["id"] for audit in after["audits"]] and job.id not in [a["id"] for a in before["audits"]]
    assert after["next_audit_due"] != before["next_audit_due"]
    page = reader.get(entry_url).get_data(as_text=True)
    assert after["next_audit_due"][:10] in page[page.index('id="next-reaudit"') :].split("</dd>")[0]
