"""Raise a concern: the public form on a library entry, its reference number, its rate limit and honeypot, and
what reviewers (and the city team) see of it on the filing's page. The text is hostile input; the contact is
personal data that no public page ever shows."""

from __future__ import annotations

import pytest
from sqlmodel import Session, select

from registry.authz import PUBLIC
from registry.filings.models import Filing
from registry.library.concern_models import Concern
from tests.conftest import csrf_token

CONTACT = "wang.fang@example.cn"
TEXT = "我的低保申请被系统自动拒绝，但我家的收入低于标准，窗口说是算法判定的。"
HOSTILE = '<script>alert("x")</script> 医保报销被拒绝了，原因不明。'


def _number(engine, filing_id: int) -> str:
    with Session(engine) as s:
        return s.get(Filing, filing_id).filing_number


def _concerns(engine) -> list[Concern]:
    with Session(engine) as s:
        return list(s.exec(select(Concern).order_by(Concern.id)))


@pytest.fixture
def public_number(engine, filing_in) -> str:
    """The filing number of an approved (public) Zhengzhou filing."""
    return _number(engine, filing_in("approved"))


def _form_url(number: str) -> str:
    return f"/library/{number}/concern"


def _send(client, number: str, *, lang: str | None = None, environ=None, **fields):
    environ = environ or {}
    query = f"?lang={lang}" if lang else ""
    page = client.get(_form_url(number) + query, environ_base=environ)
    assert page.status_code == 200, page.get_data(as_text=True)[:300]
    data = {"csrf_token": csrf_token(page.get_data(as_text=True)), **fields}
    return client.post(_form_url(number) + query, data=data, environ_base=environ)


# --- the form --------------------------------------------------------------------------------------------------------


def test_the_form_stores_a_concern_and_the_person_gets_a_reference_number(app, engine, public_number):
    client = app.test_client()
    page = client.get(_form_url(public_number)).get_data(as_text=True)
    assert 'id="concern-body"' in page and 'id="concern-contact"' in page and 'id="concern-affected"' in page
    assert 'name="website"' in page  # the honeypot is in the form, hidden from people

    response = _send(client, public_number, body=TEXT, contact=CONTACT, affected="y")
    assert response.status_code == 303
    assert response.headers["Location"].endswith("/concern/sent")

    [stored] = _concerns(engine)
    assert (stored.body, stored.contact, stored.affected, stored.status) == (TEXT, CONTACT, True, "new")
    confirmation = client.get(response.headers["Location"]).get_data(as_text=True)
    assert f'<strong id="concern-reference">{stored.reference}</strong>' in confirmation
    assert stored.reference.startswith(f"意见-{stored.created_at.year}-{stored.id:06d}-")
    assert CONTACT not in confirmation  # the contact is for reviewers, not echoed back
    # a reload shows the same reference (it is kept in the person's session), nothing is stored twice
    assert stored.reference in client.get(response.headers["Location"]).get_data(as_text=True)
    assert len(_concerns(engine)) == 1


def test_two_concerns_get_different_references(app, engine, public_number):
    client = app.test_client()
    _send(client, public_number, body=TEXT)
    _send(client, public_number, body=TEXT + "（补充）")
    first, second = _concerns(engine)
    assert first.reference != second.reference and first.code.isalnum()


@pytest.mark.parametrize(
    ("lang", "body", "message"),
    [
        ("zh", "", "请写明发生了什么。"),
        ("zh", "太短了", "请写 10 至 4000 个字（现在是 3 个字）。"),
        ("en", "   ", "Describe what happened."),
        ("en", "Too short", "Write between 10 and 4,000 characters (you wrote 9)."),
        ("en", "长" * 4001, "Write between 10 and 4,000 characters (you wrote 4,001)."),
    ],
)
def test_a_missing_or_short_text_shows_the_form_again_with_the_error_beside_the_field(
    app, engine, public_number, lang, body, message
):
    client = app.test_client()
    response = _send(client, public_number, lang=lang, body=body, contact=CONTACT, affected="y")
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    error = page[page.index('id="concern-body-error"') :]
    assert message in error[: error.index("</p>")]  # beside the field…
    assert 'href="#concern-body"' in page  # …and in the summary that links to it
    assert 'aria-describedby="concern-body-hint concern-body-error" aria-invalid="true"' in page
    assert f'value="{CONTACT}"' in page and 'name="affected" value="y" checked' in page  # what was typed is kept
    assert _concerns(engine) == []


def test_a_contact_that_is_neither_e_mail_nor_telephone_is_refused(app, engine, public_number):
    response = _send(app.test_client(), public_number, lang="en", body=TEXT, contact="call me maybe")
    assert response.status_code == 422
    assert 'id="concern-contact-error"' in response.get_data(as_text=True)
    assert _concerns(engine) == []
    assert _send(app.test_client(), public_number, body=TEXT, contact="+86 371-6555 1234").status_code == 303
    assert _concerns(engine)[0].contact == "+86 371-6555 1234"


def test_without_the_csrf_token_the_form_is_refused(app, engine, public_number):
    response = app.test_client().post(_form_url(public_number), data={"body": TEXT})
    assert response.status_code == 400
    assert _concerns(engine) == []


def test_a_robot_that_fills_the_honeypot_is_thanked_and_nothing_is_stored(app, engine, public_number):
    client = app.test_client()
    response = _send(client, public_number, body=TEXT, website="http://spam.example")
    assert response.status_code == 303
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert 'id="concern-confirmation"' in page and 'id="concern-reference"' not in page
    assert _concerns(engine) == []


def test_the_confirmation_without_a_concern_sent_goes_to_the_form(app, public_number):
    response = app.test_client().get(f"/library/{public_number}/concern/sent")
    assert response.status_code == 302 and response.headers["Location"].endswith("/concern")


@pytest.mark.parametrize("state", ["draft", "submitted", "under_review", "changes_requested"])
def test_a_filing_that_is_not_public_has_no_concern_form(app, engine, filing_in, state):
    filing_id = filing_in(state)
    with Session(engine) as s:  # give it a number, as if one had leaked: the state decides, not the number
        filing = s.get(Filing, filing_id)
        filing.filing_number = "豫算备410100-2026-9999"
        s.add(filing)
        s.commit()
    client = app.test_client()
    assert client.get(_form_url("豫算备410100-2026-9999")).status_code == 404
    token = csrf_token(client.get("/login").get_data(as_text=True))
    assert client.post(_form_url("豫算备410100-2026-9999"), data={"csrf_token": token, "body": TEXT}).status_code == 404
    assert client.get(_form_url("豫算备410100-2026-0404")).status_code == 404  # no such number at all
    assert _concerns(engine) == []


# --- the rate limit --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_the_sixth_concern_in_an_hour_from_one_address_gets_a_friendly_429_page(app, engine, public_number, lang):
    client = app.test_client()
    one = {"REMOTE_ADDR": "203.0.113.7"}
    for i in range(5):
        assert _send(client, public_number, lang=lang, environ=one, body=f"{TEXT} 第{i}次").status_code == 303
    response = _send(client, public_number, lang=lang, environ=one, body=TEXT + " 第六次")
    assert response.status_code == 429
    assert response.mimetype == "text/html"
    assert 0 < int(response.headers["Retry-After"]) <= 3600
    page = response.get_data(as_text=True)
    assert f'<html lang="{"en" if lang == "en" else "zh-CN"}"' in page
    if lang == "en":
        assert "Please wait before sending another concern" in page and "try again in about" in page
    assert len(_concerns(engine)) == 5
    # the form itself still opens, and another address may still send
    assert client.get(_form_url(public_number), environ_base=one).status_code == 200
    other = {"REMOTE_ADDR": "198.51.100.20"}
    assert _send(client, public_number, environ=other, body=TEXT).status_code == 303


def test_a_failed_attempt_counts_too(app, engine, public_number):
    client = app.test_client()
    for _ in range(5):
        assert _send(client, public_number, body="短").status_code == 422
    assert _send(client, public_number, body=TEXT).status_code == 429
    assert _concerns(engine) == []


def test_the_limit_is_configurable(engine, filing_in, database_url, tmp_path, log_key_file):
    from registry import create_app

    app = create_app(
        {
            "TESTING": True,
            "INSTANCE_PATH": str(tmp_path / "other-instance"),
            "DATABASE_URL": database_url,
            "SECRET_KEY": "test-secret-key",
            "LOG_SIGNING_KEY_FILE": log_key_file,
            "CONCERN_RATE_LIMIT": "2 per hour",
        }
    )
    number = _number(engine, filing_in("approved"))
    client = app.test_client()
    assert [_send(client, number, body=TEXT).status_code for _ in range(3)] == [303, 303, 429]
    app.extensions["registry"].engine.dispose()


def test_a_shared_storage_that_is_down_still_limits_in_memory_and_never_fails(
    engine, filing_in, database_url, tmp_path, log_key_file
):
    from registry import create_app

    app = create_app(
        {
            "TESTING": True,
            "INSTANCE_PATH": str(tmp_path / "other-instance"),
            "DATABASE_URL": database_url,
            "SECRET_KEY": "test-secret-key",
            "LOG_SIGNING_KEY_FILE": log_key_file,
            "RATELIMIT_STORAGE_URL": "redis://127.0.0.1:9/0",  # nothing listens there
        }
    )
    number = _number(engine, filing_in("approved"))
    client = app.test_client()
    assert [_send(client, number, body=TEXT).status_code for _ in range(6)] == [303] * 5 + [429]
    app.extensions["registry"].engine.dispose()


def test_behind_a_trusted_proxy_the_forwarded_address_is_the_client(app, engine, public_number):
    app.config["RATELIMIT_PROXY_HOPS"] = 1
    client = app.test_client()
    proxy = {"REMOTE_ADDR": "10.0.0.2"}
    for i in range(5):
        headers = {"X-Forwarded-For": f"203.0.113.{i}"}
        page = client.get(_form_url(public_number), environ_base=proxy)
        data = {"csrf_token": csrf_token(page.get_data(as_text=True)), "body": TEXT}
        response = client.post(_form_url(public_number), data=data, environ_base=proxy, headers=headers)
        assert response.status_code == 303  # five people behind one proxy are five addresses
    assert len(_concerns(engine)) == 5


def test_a_breached_limit_on_an_api_route_is_problem_json(app):
    limiter = app.extensions["registry_limiter"]
    limiter.limit("1 per hour")(app.blueprints["meta"])  # any API route: the same handler answers
    client = app.test_client()
    assert client.get("/api/v1/cities").status_code == 200
    response = client.get("/api/v1/cities")
    assert response.status_code == 429
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert body["status"] == 429 and body["type"].endswith(":rate_limited") and body["retry_after"] > 0
    assert int(response.headers["Retry-After"]) == body["retry_after"]


# --- in front of the reviewers ---------------------------------------------------------------------------------------


def _raise(app, number: str, body: str = TEXT, contact: str | None = CONTACT) -> Concern:
    fields = {"body": body, "affected": "y"} | ({"contact": contact} if contact else {})
    assert _send(app.test_client(), number, **fields).status_code == 303
    return _concerns(app.extensions["registry"].engine)[-1]


def test_reviewers_are_notified_and_see_the_concern_with_its_contact_on_the_filing_page(
    app, engine, api, browser_as, filing_in
):
    filing_id = filing_in("approved")
    concern = _raise(app, _number(engine, filing_id))

    for reviewer in ("reviewer1", "reviewer2"):
        [note] = [
            n for n in api(reviewer).get("/api/v1/notifications").get_json()["items"] if n["kind"] == "concern_raised"
        ]
        assert concern.reference in note["text"] and TEXT[:20] in note["text"]
        assert CONTACT not in note["text"] + note["text_zh"]
        assert note["link"] == f"/filings/{filing_id}#concern-{concern.id}"
    city_inbox = api("zhengzhou").get("/api/v1/notifications").get_json()["items"]
    assert all(n["kind"] != "concern_raised" for n in city_inbox)

    for who in ("reviewer1", "admin"):
        page = browser_as(who).get(f"/filings/{filing_id}").get_data(as_text=True)
        section = page[page.index('id="concerns"') :]
        assert f'id="concern-{concern.id}"' in section and concern.reference in section
        assert TEXT in section and CONTACT in section


def test_the_city_team_reads_the_text_but_never_the_contact_and_another_city_nothing(
    app, engine, browser_as, filing_in
):
    filing_id = filing_in("approved")
    concern = _raise(app, _number(engine, filing_id))
    page = browser_as("zhengzhou").get(f"/filings/{filing_id}").get_data(as_text=True)
    assert concern.reference in page and TEXT in page
    assert CONTACT not in page
    assert "/concerns/" not in page  # no seen/answered buttons for the city
    assert browser_as("luoyang").get(f"/filings/{filing_id}").status_code == 404


def test_the_text_is_escaped_everywhere(app, engine, api, browser_as, filing_in):
    filing_id = filing_in("approved")
    number = _number(engine, filing_id)
    _raise(app, number, body=HOSTILE)
    escaped = "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;"
    for who in ("reviewer1", "zhengzhou"):
        page = browser_as(who).get(f"/filings/{filing_id}").get_data(as_text=True)
        assert escaped in page and "<script>" not in page
    inbox = browser_as("reviewer1").get("/inbox").get_data(as_text=True)
    assert "&lt;script&gt;" in inbox and "<script>" not in inbox
    # and on the form shown again after an error, what was typed comes back escaped
    again = _send(app.test_client(), number, body="<script>", contact="<b>x</b>")
    assert again.status_code == 422
    text = again.get_data(as_text=True)
    assert "<script>" not in text and "<b>x</b>" not in text and "&lt;b&gt;x&lt;/b&gt;" in text


def test_the_contact_and_the_text_are_on_no_public_page(app, engine, filing_in):
    """Every page anyone may GET without logging in (the library's, the exports, the API) is free of both."""
    from registry.access import allowed_roles

    number = _number(engine, filing_in("approved"))
    concern = _raise(app, number, body=TEXT, contact=CONTACT)
    client = app.test_client()
    checked = []
    for rule in app.url_map.iter_rules():
        roles = allowed_roles(app, rule.endpoint) or frozenset()
        if "GET" not in rule.methods or PUBLIC not in roles or rule.endpoint == "static":
            continue
        if set(rule.arguments) - {"filing_number"}:
            continue
        url = rule.rule.replace("<filing_number>", number).replace("<path:filing_number>", number)
        response = client.get(url)
        body = response.get_data(as_text=True)
        assert CONTACT not in body and TEXT not in body and concern.code not in body, url
        checked.append(url)
    assert _form_url(number) in checked and "/" in checked


# --- seen and answered -----------------------------------------------------------------------------------------------


def _status_url(filing_id: int, concern_id: int) -> str:
    return f"/filings/{filing_id}/concerns/{concern_id}/status"


def test_a_reviewer_marks_a_concern_seen_then_answered(app, engine, browser_as, filing_in):
    filing_id = filing_in("approved")
    concern = _raise(app, _number(engine, filing_id))
    client = browser_as("reviewer1")
    page = client.get(f"/filings/{filing_id}").get_data(as_text=True)
    assert page.count(f'action="{_status_url(filing_id, concern.id)}"') == 2  # seen, answered (it is new)

    response = client.post(_status_url(filing_id, concern.id), data={"csrf_token": csrf_token(page), "status": "seen"})
    assert response.status_code == 303 and response.headers["Location"].endswith(f"#concern-{concern.id}")
    assert _concerns(engine)[0].status == "seen"
    assert "0 not yet seen" in client.get(f"/filings/{filing_id}?lang=en").get_data(as_text=True)

    client.post(_status_url(filing_id, concern.id), data={"csrf_token": csrf_token(page), "status": "answered"})
    [stored] = _concerns(engine)
    assert stored.status == "answered" and stored.status_changed_at is not None
    assert stored.status_changed_by_id is not None

    bad = client.post(_status_url(filing_id, concern.id), data={"csrf_token": csrf_token(page), "status": "deleted"})
    assert bad.status_code == 422 and _concerns(engine)[0].status == "answered"
    assert client.post(_status_url(filing_id, concern.id), data={"status": "new"}).status_code == 400  # no CSRF
    other = filing_in("approved")
    wrong = client.post(_status_url(other, concern.id), data={"csrf_token": csrf_token(page), "status": "new"})
    assert wrong.status_code == 404  # the concern is not about that filing


@pytest.mark.parametrize("who", ["zhengzhou", "admin", None])
def test_only_reviewers_mark_concerns(app, engine, browser_as, filing_in, who):
    filing_id = filing_in("approved")
    concern = _raise(app, _number(engine, filing_id))
    client = browser_as(who)
    token = csrf_token(client.get("/login" if who is None else "/account").get_data(as_text=True))
    response = client.post(_status_url(filing_id, concern.id), data={"csrf_token": token, "status": "seen"})
    assert response.status_code in (302, 403)
    if who is None:
        assert "/login" in response.headers["Location"]
    assert _concerns(engine)[0].status == "new"
