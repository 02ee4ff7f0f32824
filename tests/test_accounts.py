"""Accounts: passwords hashed with argon2, login sessions held by the server, tokens shown once and revocable."""

import re
from datetime import datetime, timedelta

import pytest
from sqlmodel import select

from registry.accounts import service as accounts
from registry.accounts.models import ApiToken, LoginSession, User
from registry.errors import Conflict, Unprocessable
from tests.conftest import PASSWORD, csrf_token


def test_passwords_are_stored_as_argon2id_hashes_never_in_clear(session):
    user = accounts.create_user(
        session=session, username="newcity", password="a-long-password", role="city", city_code="410500"
    )
    assert user.password_hash.startswith("$argon2id$")
    assert "a-long-password" not in user.password_hash
    assert accounts.authenticate(session=session, username="newcity", password="a-long-password").id == user.id
    assert accounts.authenticate(session=session, username="newcity", password="wrong-password") is None
    assert accounts.authenticate(session=session, username="nobody", password="a-long-password") is None


@pytest.mark.parametrize(
    ("kwargs", "pointer"),
    [
        ({"role": "city", "city_code": None}, "/city_code"),
        ({"role": "reviewer", "city_code": "410100"}, "/city_code"),
        ({"role": "mayor"}, "/role"),
        ({"role": "reviewer", "password": "short"}, "/password"),
    ],
)
def test_account_rules(session, kwargs, pointer):
    args = {"username": "someone", "password": "long-enough-password", **kwargs}
    with pytest.raises(Unprocessable) as caught:
        accounts.create_user(session=session, **args)
    assert caught.value.pointer == pointer


def test_a_user_name_is_unique(session):
    with pytest.raises(Conflict):
        accounts.create_user(session=session, username="reviewer1", password="long-enough-password", role="reviewer")


def test_a_disabled_account_can_no_longer_log_in_or_use_its_token(app, api, session):
    client = api("zhengzhou")
    assert client.get("/api/v1/me").status_code == 200
    user = session.exec(select(User).where(User.username == "zhengzhou")).one()
    user.active = False
    session.add(user)
    session.commit()
    assert client.get("/api/v1/me").status_code == 401
    assert accounts.authenticate(session=session, username="zhengzhou", password=PASSWORD) is None


def test_tokens_are_stored_hashed_and_shown_once(app, session):
    user = accounts.get_user_by_name(session=session, username="zhengzhou")
    token, record = accounts.create_token(session=session, user=user, label="ci")
    session.commit()
    stored = session.exec(select(ApiToken)).all()
    assert all(token not in (t.token_hash, t.prefix) for t in stored)
    assert token.startswith(record.prefix)
    response = app.test_client().get("/api/v1/tokens", headers={"Authorization": f"Bearer {token}"})
    assert token not in response.get_data(as_text=True)


def test_a_revoked_token_is_refused(app, api, token_for):
    token = token_for("zhengzhou")
    headers = {"Authorization": f"Bearer {token}"}
    client = app.test_client()
    mine = client.get("/api/v1/tokens", headers=headers).get_json()["items"]
    assert client.delete(f"/api/v1/tokens/{mine[0]['id']}", headers=headers).status_code == 200
    assert client.get("/api/v1/me", headers=headers).status_code == 401


def test_a_token_cannot_revoke_another_accounts_token(app, token_for):
    victim = token_for("luoyang")
    client = app.test_client()
    victims = client.get("/api/v1/tokens", headers={"Authorization": f"Bearer {victim}"}).get_json()["items"]
    attacker = {"Authorization": f"Bearer {token_for('zhengzhou')}"}
    assert client.delete(f"/api/v1/tokens/{victims[0]['id']}", headers=attacker).status_code == 404
    assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {victim}"}).status_code == 200


def test_a_token_acts_only_for_its_owners_city(api):
    me = api("luoyang").get("/api/v1/me").get_json()
    assert me == {"username": "luoyang", "role": "city", "city_code": "410300"}


def test_web_login_is_a_server_side_session_that_logout_ends(app, browser_as, session):
    client = browser_as("zhengzhou")
    assert client.get("/filings").status_code == 200
    live = session.exec(select(LoginSession).where(LoginSession.ended_at.is_(None))).all()
    assert len(live) == 1
    cookie = client.get_cookie("session")
    assert cookie is not None and live[0].id not in cookie.value  # the browser holds a token, the server its hash
    page = client.get("/filings").get_data(as_text=True)
    assert client.post("/logout", data={"csrf_token": csrf_token(page)}).status_code == 302
    session.expire_all()
    assert session.exec(select(LoginSession).where(LoginSession.ended_at.is_(None))).all() == []
    # Replaying the old cookie after logout does not log back in.
    replay = app.test_client()
    replay.set_cookie("session", cookie.value)
    response = replay.get("/filings")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_a_wrong_password_shows_a_clear_message_and_no_session(app, session):
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    response = client.post("/login", data={"username": "zhengzhou", "password": "nope", "csrf_token": csrf_token(page)})
    assert response.status_code == 401
    assert 'role="alert"' in response.get_data(as_text=True)
    assert session.exec(select(LoginSession)).all() == []


def test_login_without_the_csrf_token_is_refused(app, session):
    response = app.test_client().post("/login", data={"username": "zhengzhou", "password": PASSWORD})
    assert response.status_code == 400
    assert session.exec(select(LoginSession)).all() == []


def test_login_only_redirects_to_this_site(app):
    client = app.test_client()
    page = client.get("/login?next=https://evil.example/").get_data(as_text=True)
    response = client.post(
        "/login?next=https://evil.example/",
        data={"username": "zhengzhou", "password": PASSWORD, "csrf_token": csrf_token(page)},
    )
    assert response.status_code == 302
    assert not response.headers["Location"].startswith("https://evil")


def test_the_account_page_creates_a_token_shown_once_that_works_on_the_api(app, browser_as):
    client = browser_as("zhengzhou")
    page = client.get("/account").get_data(as_text=True)
    created = client.post("/account", data={"label": "pipeline", "csrf_token": csrf_token(page)}).get_data(as_text=True)
    token = re.search(r'id="new-token">(rgt_[^<]+)<', created).group(1)
    assert app.test_client().get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert token not in client.get("/account").get_data(as_text=True)


def test_a_token_records_its_last_use_to_the_minute_without_a_write_on_every_call(app, token_for, monkeypatch):
    token = token_for("zhengzhou")
    headers = {"Authorization": f"Bearer {token}"}
    client = app.test_client()

    def last_used():
        return client.get("/api/v1/tokens", headers=headers).get_json()["items"][0]["last_used_at"]

    first = last_used()
    assert first is not None  # the first use is recorded
    assert last_used() == first  # a second call within the minute writes nothing
    later = datetime.fromisoformat(first) + accounts.LAST_USED_RESOLUTION + timedelta(seconds=1)
    monkeypatch.setattr(accounts, "utcnow", lambda: later)
    assert datetime.fromisoformat(last_used()) == later  # a minute on, it is recorded again
