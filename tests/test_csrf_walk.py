"""Every form of the pages refuses a request without its CSRF token, or with a wrong one, and changes nothing.

The forms are every rule of ``app.url_map`` that accepts POST outside ``/api/`` (the API is authorised by bearer
token only, never by the cookie, so it needs no token: see registry.access). Each has a case below: who sends it
(a logged-in account the route admits, and also the anonymous public for public forms) and a request that does
something. For each the walk posts without a token, with a made-up token and with another session's genuine one:
each is the app's CSRF error (400) and the database, every table and row, is as before, and no preference cookie
is set. With the right token the same request is no CSRF error and does what it says (the database changes, or
the cookie is set), which proves the refusals were the token's doing. A new form with no case fails the walk.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import sqlalchemy as sa
from sqlmodel import Session, select

from registry import create_app
from registry.access import allowed_roles
from registry.authz import PUBLIC
from registry.demo import tiny_model_bytes
from registry.filings.models import Filing
from registry.notifications.models import Notification
from tests.conftest import PASSWORD, csrf_token, logged_in_client

CSRF_ERROR = re.compile(r"CSRF", re.IGNORECASE)
PREFERENCE_COOKIES = ("lang", "language", "display")


@dataclass
class Setup:
    url: str
    form: Callable[[], dict]  # a fresh form each time (file parts are streams, read once)
    changes: bool = True  # with the right token the request changes the database (else it sets a cookie)
    cookie: str | None = None


def _id(app, model, *where):
    with Session(app.extensions["registry"].engine) as s:
        row = s.exec(select(model).where(*where).order_by(model.id.desc())).first()
        assert row is not None, f"the setup made no {model.__name__}"
        return row.id


def _number(app, filing_id: int) -> str:
    with Session(app.extensions["registry"].engine) as s:
        return s.get(Filing, filing_id).filing_number


def _propose(api, filing_id: int) -> int:
    proposed = api("reviewer1").post(
        f"/api/v1/filings/{filing_id}/decisions",
        json={"outcome": "approved", "reasons": ["The audit and the documents are in order."]},
    )
    assert proposed.status_code == 201, proposed.get_json()
    return proposed.get_json()["id"]


def _concern(app, number: str) -> None:
    client = app.test_client()
    page = client.get(f"/library/{number}/concern")
    sent = client.post(
        f"/library/{number}/concern",
        data={"csrf_token": csrf_token(page.get_data(as_text=True)), "body": "这个算法的决定对我不公平，请复核。"},
    )
    assert sent.status_code == 303, sent.get_data(as_text=True)[:500]


def _dataset_upload() -> dict:
    descriptor = {"schema_version": "1", "name": "csrf-walk"}  # incomplete: refused at /descriptor, never kept
    return {"descriptor": (io.BytesIO(json.dumps(descriptor).encode()), "descriptor.json")}


# rule → (role that sends it, setup(app, api, filing_in, documents) → Setup). "public" forms are also sent anonymously.
CASES: dict[str, tuple[str, Callable[..., Setup]]] = {}


def case(rule: str, role: str):
    def register(setup: Callable[..., Setup]) -> Callable[..., Setup]:
        CASES[rule] = (role, setup)
        return setup

    return register


@case("/login", "public")
def _login_form(app, api, filing_in, docs):
    return Setup("/login", lambda: {"username": "luoyang", "password": PASSWORD})


@case("/logout", "city")
def _logout_form(app, api, filing_in, docs):
    return Setup("/logout", dict)


@case("/language", "public")
def _language_form(app, api, filing_in, docs):
    return Setup("/language", lambda: {"lang": "en", "next": "/library"}, changes=False, cookie="lang")


@case("/display", "public")
def _display_form(app, api, filing_in, docs):
    return Setup("/display", lambda: {"display": "large", "next": "/library"}, changes=False, cookie="display")


@case("/account", "city")
def _token_form(app, api, filing_in, docs):
    return Setup("/account", lambda: {"label": "pipeline"})


@case("/account/tokens/<int:token_id>/revoke", "city")
def _revoke_form(app, api, filing_in, docs):
    api("zhengzhou")  # makes a token of Zhengzhou's to revoke
    return Setup(f"/account/tokens/{_token_id(app, 'zhengzhou')}/revoke", dict)


def _document_upload(document: dict) -> Callable[[], dict]:
    return lambda: {
        "technical_document_file": (io.BytesIO(json.dumps(document).encode()), "td.json"),
        "input_rows": "1",
        "contact_rows": "1",
    }


@case("/filings/new", "city")
def _new_filing_form(app, api, filing_in, docs):
    return Setup("/filings/new", _document_upload(docs.technical_document))


@case("/filings/<int:filing_id>/edit", "city")
def _edit_form(app, api, filing_in, docs):
    changed = docs.technical_document | {"department": "郑州市民政局（改）"}
    return Setup(f"/filings/{filing_in('draft')}/edit", _document_upload(changed))


@case("/filings/<int:filing_id>/attachments", "city")
def _model_form(app, api, filing_in, docs):
    model = tiny_model_bytes(seed=0.5)
    return Setup(f"/filings/{filing_in('draft')}/attachments", lambda: {"file": (io.BytesIO(model), "m.onnx")})


@case("/filings/<int:filing_id>/actions/<action>", "city")
def _step_form(app, api, filing_in, docs):
    return Setup(f"/filings/{filing_in('draft')}/actions/submit", dict)


@case("/filings/<int:filing_id>/comments", "reviewer")
def _comment_form(app, api, filing_in, docs):
    return Setup(f"/filings/{filing_in('under_review')}/comments", lambda: {"body": "请补充测试数据的抽样方法。"})


@case("/filings/<int:filing_id>/audits", "reviewer")
def _audit_form(app, api, filing_in, docs):
    return Setup(f"/filings/{filing_in('under_review')}/audits", lambda: {"dataset": "german-credit"})


@case("/filings/<int:filing_id>/decisions", "reviewer")
def _decision_form(app, api, filing_in, docs):
    reasons = "The test report does not cover rural households."
    return Setup(f"/filings/{filing_in('under_review')}/decisions", lambda: {"outcome": "rejected", "reasons": reasons})


@case("/decisions/<int:decision_id>/countersign", "reviewer2")
def _countersign_form(app, api, filing_in, docs):
    return Setup(f"/decisions/{_propose(api, filing_in('under_review'))}/countersign", dict)


@case("/decisions/<int:decision_id>/withdraw", "reviewer")
def _withdraw_form(app, api, filing_in, docs):
    decision_id = _propose(api, filing_in("under_review"))
    return Setup(f"/decisions/{decision_id}/withdraw", lambda: {"reason": "Proposed before the audit finished."})


@case("/filings/<int:filing_id>/concerns/<int:concern_id>/status", "reviewer")
def _concern_status_form(app, api, filing_in, docs):
    filing_id = filing_in("approved")
    _concern(app, _number(app, filing_id))
    return Setup(f"/filings/{filing_id}/concerns/{_concern_id(app, filing_id)}/status", lambda: {"status": "answered"})


@case("/library/<filing_number>/concern", "public")
def _concern_form(app, api, filing_in, docs):
    body = "申请被拒绝，但我认为我符合条件，请复核这个算法。"
    return Setup(f"/library/{_number(app, filing_in('approved'))}/concern", lambda: {"body": body, "contact": ""})


@case("/inbox/<int:notification_id>/read", "city")
def _read_form(app, api, filing_in, docs):
    filing_in("approved")  # the decision notifies the city team
    return Setup(f"/inbox/{_notification_id(app, 'zhengzhou')}/read", dict)


@case("/inbox/read-all", "city")
def _read_all_form(app, api, filing_in, docs):
    filing_in("approved")
    return Setup("/inbox/read-all", dict)


# An administrator's forms: the upload is refused by its checks and a shipped data set cannot be retired, so the
# right token changes nothing either; the walk still proves that a missing or wrong one is the CSRF error.
@case("/admin/reference-datasets", "admin")
def _dataset_form(app, api, filing_in, docs):
    return Setup("/admin/reference-datasets", _dataset_upload, changes=False)


@case("/admin/reference-datasets/<name>/retire", "admin")
def _retire_form(app, api, filing_in, docs):
    return Setup("/admin/reference-datasets/german-credit/retire", dict, changes=False)


@case("/admin/security/unlock", "admin")
def _unlock_form(app, api, filing_in, docs):
    return Setup("/admin/security/unlock", lambda: {"username": "zhengzhou"})  # the unlock is recorded in the trail


USERS = {"city": "zhengzhou", "reviewer": "reviewer1", "reviewer2": "reviewer2", "admin": "admin", "public": None}


def _token_id(app, username: str) -> int:
    from registry.accounts import service as accounts

    with Session(app.extensions["registry"].engine) as s:
        user = accounts.get_user_by_name(session=s, username=username)
        return accounts.list_tokens(session=s, user_id=user.id)[0].id


def _concern_id(app, filing_id: int) -> int:
    from registry.library.concern_models import Concern

    return _id(app, Concern, Concern.filing_id == filing_id)


def _notification_id(app, username: str) -> int:
    from registry.accounts import service as accounts

    with Session(app.extensions["registry"].engine) as s:
        user_id = accounts.get_user_by_name(session=s, username=username).id
    return _id(app, Notification, Notification.user_id == user_id, Notification.read_at.is_(None))


def _form_rules() -> list[str]:
    app = create_app({"INSTANCE_PATH": "/tmp/registry-route-listing", "SECRET_KEY": "x", "DATABASE_URL": "sqlite://"})
    found = sorted({r.rule for r in app.url_map.iter_rules() if "POST" in r.methods and not r.rule.startswith("/api/")})
    app.extensions["registry"].engine.dispose()
    return found


FORM_RULES = _form_rules()


def test_every_form_of_the_app_has_a_case():
    missing = sorted(set(FORM_RULES) - set(CASES))
    assert not missing, f"POST routes with no CSRF case: {missing} (add them to CASES)"
    assert not set(CASES) - set(FORM_RULES), "a case for a route that no longer exists"


def snapshot(engine, tables: list[sa.Table] | None = None) -> dict[str, list]:
    """Every row of every table (the whole database as the app left it)."""
    if tables is None:
        metadata = sa.MetaData()
        metadata.reflect(engine)
        tables = [t for name, t in sorted(metadata.tables.items()) if name != "alembic_version"]
    with engine.connect() as connection:
        return {
            table.name: sorted(repr(tuple(row)) for row in connection.execute(sa.select(table))) for table in tables
        }


def _tables(engine) -> list[sa.Table]:
    metadata = sa.MetaData()
    metadata.reflect(engine)
    return [t for name, t in sorted(metadata.tables.items()) if name != "alembic_version"]


def _changed_tables(before: dict, after: dict) -> list[str]:
    return [name for name in sorted(set(before) | set(after)) if before.get(name) != after.get(name)]


def _session_token(client, logged_in: bool) -> str:
    page = client.get("/account" if logged_in else "/login")
    return csrf_token(page.get_data(as_text=True))


def _preference_cookies(response) -> list[str]:
    return [c for c in response.headers.getlist("Set-Cookie") if c.split("=", 1)[0].strip() in PREFERENCE_COOKIES]


def _senders(role: str) -> list[str | None]:
    if role == "public":
        return [None, "reviewer1"]  # the public, and someone logged in (their session has a token of its own)
    return [USERS[role]]


PARAMS = [(rule, who) for rule in FORM_RULES if rule in CASES for who in _senders(CASES[rule][0])]


# The token is checked before any database work, so one database is enough for the walk (the forms' effects on
# PostgreSQL are tested with each feature).
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(("rule", "sender"), PARAMS, ids=[f"{r} as {w or 'public'}" for r, w in PARAMS])
def test_a_form_without_its_token_or_with_a_wrong_one_is_refused_and_changes_nothing(
    app, api, filing_in, documents, rule, sender
):
    role, make = CASES[rule]
    assert role == "public" or sender is not None
    endpoint = next(r.endpoint for r in app.url_map.iter_rules() if r.rule == rule and "POST" in r.methods)
    admitted = allowed_roles(app, endpoint)
    assert role == "public" and PUBLIC in admitted or role.rstrip("2") in admitted, f"{rule} does not admit {role}"
    setup = make(app, api, filing_in, documents)
    engine = app.extensions["registry"].engine
    client = logged_in_client(app, sender)
    good = _session_token(client, sender is not None)
    someone_elses = _session_token(logged_in_client(app, "luoyang"), True)
    assert someone_elses != good
    tables = _tables(engine)
    before = snapshot(engine, tables)
    for label, token in (("no token", None), ("a made-up token", "not-a-token"), ("another session's", someone_elses)):
        form = setup.form()
        if token is not None:
            form["csrf_token"] = token
        response = client.post(setup.url, data=form, content_type="multipart/form-data")
        text = response.get_data(as_text=True)
        assert response.status_code == 400, f"{rule} with {label}: {response.status_code} {text[:300]}"
        assert CSRF_ERROR.search(text), f"{rule} with {label}: not the CSRF error page"
        assert response.mimetype == "text/html"
        assert not _preference_cookies(response), f"{rule} with {label} set a cookie"
        assert _changed_tables(before, snapshot(engine, tables)) == [], f"{rule} with {label} changed the database"
    response = client.post(setup.url, data=setup.form() | {"csrf_token": good}, content_type="multipart/form-data")
    text = response.get_data(as_text=True)
    assert response.status_code < 500, text[:500]
    assert not (response.status_code == 400 and CSRF_ERROR.search(text)), f"{rule} refused the right token"
    if setup.changes:
        changed = _changed_tables(before, snapshot(engine, tables))
        assert changed, f"{rule} with the right token changed nothing: {text[:300]}"
    if setup.cookie:
        assert any(c.startswith(f"{setup.cookie}=") for c in _preference_cookies(response)), response.headers


def test_a_token_from_before_logging_in_again_no_longer_works(app, filing_in):
    """Logging out ends the session: its token cannot be replayed by whoever kept it."""
    filing_id = filing_in("under_review")
    client = logged_in_client(app, "reviewer1")
    old = _session_token(client, True)
    assert client.post("/logout", data={"csrf_token": old}).status_code == 302
    client = logged_in_client(app, "reviewer1")
    before = snapshot(app.extensions["registry"].engine)
    response = client.post(f"/filings/{filing_id}/comments", data={"body": "replayed", "csrf_token": old})
    assert response.status_code == 400 and CSRF_ERROR.search(response.get_data(as_text=True))
    assert _changed_tables(before, snapshot(app.extensions["registry"].engine)) == []
