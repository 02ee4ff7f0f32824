"""Password guessing on the web login: a rate limit per client address, a lockout per user name that treats
unknown names exactly like real ones, every attempt in the append-only login trail, the administrators' page of
that trail, and `registry users unlock`.

The lockout's clock is moved through its seam (registry.accounts.lockout.utcnow); nothing sleeps.
"""

from __future__ import annotations

import re
import threading
from datetime import timedelta

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from sqlalchemy.exc import DatabaseError
from sqlmodel import Session, select

from registry import cli
from registry.accounts import lockout, trail
from registry.accounts import service as accounts
from registry.accounts.models import LoginEvent, LoginOutcome, LoginSession, LoginThrottle, User
from registry.db import utcnow
from tests.conftest import PASSWORD, csrf_token

WRONG = "not-the-password"
LOCKED_TEXT = "this account is temporarily locked"
WRONG_TEXT = "The user name or password is wrong."
LIMITED_TEXT = "Too many login attempts from your connection"


@pytest.fixture
def clock(monkeypatch):
    """The lockout's clock, which a test moves forward: ``clock.advance(minutes=15)``."""

    class Clock:
        offset = timedelta()

        def advance(self, **delta) -> None:
            self.offset += timedelta(**delta)

    moved = Clock()
    monkeypatch.setattr(lockout, "utcnow", lambda: utcnow() + moved.offset)
    return moved


@pytest.fixture
def unlimited(app):
    """Lift the per-address rate limit, for tests about the lockout alone (one test client is one address)."""
    app.config["LOGIN_RATE_LIMIT"] = "10000 per minute"
    return app


class Visitor:
    """A browser at one address, in English, that posts the login form as a person would."""

    def __init__(self, app, address: str = "192.0.2.10", user_agent: str = "guess-test/1.0") -> None:
        self.client = app.test_client()
        self.client.set_cookie("lang", "en")
        self.environ = {"REMOTE_ADDR": address, "HTTP_USER_AGENT": user_agent}
        page = self.client.get("/login", environ_base=self.environ)
        self.token = csrf_token(page.get_data(as_text=True))

    def login(self, username: str, password: str):
        return self.client.post(
            "/login",
            data={"username": username, "password": password, "csrf_token": self.token},
            environ_base=self.environ,
        )


def _outcomes(session: Session, username: str | None = None) -> list[str]:
    query = select(LoginEvent).order_by(LoginEvent.id)
    if username is not None:
        query = query.where(LoginEvent.username == username)
    session.expire_all()
    return [str(e.outcome) for e in session.exec(query)]


def _sessions(session: Session) -> int:
    session.expire_all()
    return len(session.exec(select(LoginSession)).all())


# --- the lockout -------------------------------------------------------------------------------------------------


def test_five_failures_lock_the_account_even_for_the_right_password_until_the_period_ends(unlimited, session, clock):
    visitor = Visitor(unlimited)
    for _ in range(4):
        answer = visitor.login("zhengzhou", WRONG)
        assert answer.status_code == 401 and WRONG_TEXT in answer.get_data(as_text=True)
    fifth = visitor.login("zhengzhou", WRONG)
    assert fifth.status_code == 401
    assert LOCKED_TEXT in fifth.get_data(as_text=True) and "15 minutes" in fifth.get_data(as_text=True)
    right = visitor.login("zhengzhou", PASSWORD)
    assert right.status_code == 401
    assert LOCKED_TEXT in right.get_data(as_text=True) and WRONG_TEXT not in right.get_data(as_text=True)
    assert _sessions(session) == 0
    clock.advance(minutes=14, seconds=50)
    assert LOCKED_TEXT in visitor.login("zhengzhou", PASSWORD).get_data(as_text=True)
    clock.advance(seconds=11)
    assert visitor.login("zhengzhou", PASSWORD).status_code == 302
    assert _sessions(session) == 1
    assert _outcomes(session) == ["wrong_password"] * 5 + ["locked", "locked", "success"]


def test_a_success_resets_the_count_and_the_settings_are_honoured(unlimited, session):
    unlimited.config.update(LOGIN_LOCKOUT_FAILURES=3, LOGIN_LOCKOUT_MINUTES=2)
    visitor = Visitor(unlimited)
    for _ in range(2):
        assert visitor.login("zhengzhou", WRONG).status_code == 401
    assert visitor.login("zhengzhou", PASSWORD).status_code == 302
    other = Visitor(unlimited)
    for _ in range(2):
        assert WRONG_TEXT in other.login("zhengzhou", WRONG).get_data(as_text=True)  # counted from zero again
    third = other.login("zhengzhou", WRONG).get_data(as_text=True)
    assert LOCKED_TEXT in third and "2 minutes" in third
    # The lock is on the name, not on the address: a fresh browser elsewhere is refused too.
    assert LOCKED_TEXT in Visitor(unlimited, address="198.51.100.7").login("zhengzhou", PASSWORD).get_data(as_text=True)
    # Other accounts are untouched.
    assert Visitor(unlimited).login("luoyang", PASSWORD).status_code == 302


def test_the_right_password_of_a_deactivated_account_is_refused_like_a_wrong_one(unlimited, session):
    user = session.exec(select(User).where(User.username == "luoyang")).one()
    user.active = False
    session.add(user)
    session.commit()
    answer = Visitor(unlimited).login("luoyang", PASSWORD)
    assert answer.status_code == 401 and WRONG_TEXT in answer.get_data(as_text=True)
    assert _outcomes(session) == ["inactive"]


def _normalised(answer, username: str) -> tuple[int, str]:
    """Status and page with the CSRF token and the echoed user name taken out (the only parts that may differ)."""
    body = answer.get_data(as_text=True)
    body = re.sub(r'name="csrf_token"[^>]*>', "", body).replace(f'value="{username}"', 'value="NAME"')
    return answer.status_code, body


def test_unknown_user_names_answer_exactly_like_known_ones_and_lock_the_same_way(unlimited, session, monkeypatch):
    """Every answer for a name nobody has is the same page, with the same status, as for a real account, attempt
    after attempt (the lock included), and costs the same argon2 work (one hash or verify, none when locked)."""
    work: list[str] = []
    hasher = accounts._hasher

    class Counting:
        def hash(self, password):
            work.append("argon2")
            return hasher.hash(password)

        def verify(self, stored, password):
            work.append("argon2")
            return hasher.verify(stored, password)

        def check_needs_rehash(self, stored):
            return hasher.check_needs_rehash(stored)

    monkeypatch.setattr(accounts, "_hasher", Counting())
    known, unknown = Visitor(unlimited), Visitor(unlimited)
    for attempt in range(7):
        work.clear()
        a = _normalised(known.login("zhengzhou", WRONG), "zhengzhou")
        work_known = list(work)
        work.clear()
        b = _normalised(unknown.login("nobody-here", WRONG), "nobody-here")
        assert a == b, f"attempt {attempt + 1} tells the names apart"
        assert work_known == work == (["argon2"] if attempt < 5 else []), attempt
    assert a[0] == 401 and LOCKED_TEXT in a[1]
    assert _outcomes(session, "nobody-here") == ["unknown_user"] * 5 + ["locked"] * 2


# --- the rate limit per address ----------------------------------------------------------------------------------


def test_an_address_over_the_rate_limit_gets_429_with_retry_after_and_nothing_is_checked(app, session):
    app.config["LOGIN_RATE_LIMIT"] = "3 per minute"
    guesser = Visitor(app, address="203.0.113.5")
    for _ in range(3):
        assert guesser.login("zhengzhou", WRONG).status_code == 401
    limited = guesser.login("zhengzhou", PASSWORD)  # even the right password: it is not looked at
    assert limited.status_code == 429
    assert int(limited.headers["Retry-After"]) > 0
    body = limited.get_data(as_text=True)
    assert LIMITED_TEXT in body and 'role="alert"' in body and 'value="zhengzhou"' in body
    assert _sessions(session) == 0
    chinese = app.test_client()
    token = csrf_token(chinese.get("/login").get_data(as_text=True))
    answer = chinese.post(
        "/login",
        data={"username": "zhengzhou", "password": WRONG, "csrf_token": token},
        environ_base={"REMOTE_ADDR": "203.0.113.5"},
    )
    assert answer.status_code == 429 and '<html lang="zh-CN"' in answer.get_data(as_text=True)
    # Another address is not limited, and the account is not locked by the refused attempts.
    assert Visitor(app, address="203.0.113.6").login("zhengzhou", PASSWORD).status_code == 302
    assert _outcomes(session) == ["wrong_password"] * 3 + ["rate_limited", "rate_limited", "success"]
    event = session.exec(select(LoginEvent).where(LoginEvent.outcome == "rate_limited")).first()
    assert event.client_address == "203.0.113.5" and event.user_id is not None


def test_the_rate_limit_is_per_address_behind_a_trusted_proxy(app, session):
    app.config.update(LOGIN_RATE_LIMIT="2 per minute", RATELIMIT_PROXY_HOPS=1)

    def visitor(client_ip):
        v = Visitor(app, address="10.0.0.1")  # the proxy
        v.environ["HTTP_X_FORWARDED_FOR"] = client_ip
        return v

    one, two = visitor("198.51.100.1"), visitor("198.51.100.2")
    assert [one.login("zhengzhou", WRONG).status_code for _ in range(3)] == [401, 401, 429]
    assert two.login("luoyang", PASSWORD).status_code == 302
    addresses = {e.client_address for e in session.exec(select(LoginEvent))}
    assert addresses == {"198.51.100.1", "198.51.100.2"}


# --- the trail ---------------------------------------------------------------------------------------------------


def test_every_attempt_and_logout_is_in_the_trail_with_its_outcome(app, session):
    app.config.update(LOGIN_RATE_LIMIT="5 per minute", LOGIN_LOCKOUT_FAILURES=2)
    long_agent = "Mozilla/5.0 " + "x" * 1000
    visitor = Visitor(app, address="192.0.2.44", user_agent=long_agent)
    assert visitor.login("reviewer1", PASSWORD).status_code == 302
    page = visitor.client.get("/filings", environ_base=visitor.environ).get_data(as_text=True)
    visitor.client.post("/logout", data={"csrf_token": csrf_token(page)}, environ_base=visitor.environ)
    visitor.login("zhengzhou", WRONG)
    visitor.login("no-such-person", WRONG)
    visitor.login("zhengzhou", WRONG)  # the second failure locks zhengzhou
    visitor.login("zhengzhou", PASSWORD)  # refused: locked
    visitor.client.post(
        "/login",
        data={"username": "n" * 200, "password": WRONG, "csrf_token": visitor.token},
        environ_base=visitor.environ,
    )  # the sixth POST: over the limit (the form's own length check never runs)
    session.expire_all()
    events = session.exec(select(LoginEvent).order_by(LoginEvent.id)).all()
    ids = {u.username: u.id for u in session.exec(select(User))}
    assert [(str(e.outcome), e.username, e.user_id) for e in events] == [
        ("success", "reviewer1", ids["reviewer1"]),
        ("logout", "reviewer1", ids["reviewer1"]),
        ("wrong_password", "zhengzhou", ids["zhengzhou"]),
        ("unknown_user", "no-such-person", None),
        ("wrong_password", "zhengzhou", ids["zhengzhou"]),
        ("locked", "zhengzhou", ids["zhengzhou"]),
        ("rate_limited", "n" * 64, None),
    ]
    assert {e.client_address for e in events} == {"192.0.2.44"}
    assert all(e.user_agent == long_agent[:256] for e in events)
    assert all(e.created_at.tzinfo is not None for e in events)


@pytest.mark.parametrize("statement", ["UPDATE login_event SET outcome = 'success'", "DELETE FROM login_event"])
def test_the_trail_refuses_update_and_delete_in_the_database(unlimited, engine, session, statement):
    Visitor(unlimited).login("zhengzhou", WRONG)
    with pytest.raises(DatabaseError, match="append-only"):
        with engine.begin() as connection:
            connection.execute(sa.text(statement))
    assert _outcomes(session) == ["wrong_password"]


# --- unlocking ---------------------------------------------------------------------------------------------------


@pytest.fixture
def cli_env(app, monkeypatch, log_key_file):
    """The `registry` command pointed at the test's database."""
    monkeypatch.setenv("DATABASE_URL", app.config["DATABASE_URL"])
    monkeypatch.setenv("REGISTRY_INSTANCE", app.config["INSTANCE_PATH"])
    monkeypatch.setenv("REGISTRY_SECRET_KEY", "test-secret-key")
    monkeypatch.setenv("REGISTRY_LOG_SIGNING_KEY_FILE", log_key_file)
    return CliRunner()


def test_an_administrator_unlocks_an_account_with_the_cli_and_it_is_recorded(unlimited, session, cli_env):
    visitor = Visitor(unlimited)
    for _ in range(5):
        visitor.login("zhengzhou", WRONG)
    assert LOCKED_TEXT in visitor.login("zhengzhou", PASSWORD).get_data(as_text=True)
    result = cli_env.invoke(cli.main, ["users", "unlock", "zhengzhou"])
    assert result.exit_code == 0, result.output
    assert "Unlocked zhengzhou" in result.output
    assert visitor.login("zhengzhou", PASSWORD).status_code == 302
    session.expire_all()
    unlocked = session.exec(select(LoginEvent).where(LoginEvent.outcome == "unlocked")).one()
    assert unlocked.user_agent == "registry users unlock" and unlocked.user_id is not None
    throttle = session.get(LoginThrottle, "zhengzhou")
    assert throttle.failures == 0 and throttle.locked_until is None
    again = cli_env.invoke(cli.main, ["users", "unlock", "zhengzhou"])
    assert again.exit_code == 0 and "was not locked" in again.output
    unknown = cli_env.invoke(cli.main, ["users", "unlock", "nobody-here"])
    assert unknown.exit_code != 0 and "No user named" in unknown.output


# --- the administrators' page ------------------------------------------------------------------------------------


def test_an_administrator_unlocks_an_account_from_the_page_and_it_is_recorded(unlimited, session, browser_as):
    visitor = Visitor(unlimited)
    for _ in range(5):
        visitor.login("zhengzhou", WRONG)
    assert LOCKED_TEXT in visitor.login("zhengzhou", PASSWORD).get_data(as_text=True)
    admin = browser_as("admin")
    page = admin.get("/admin/security?lang=en").get_data(as_text=True)
    locked = page[page.index('id="locked-table"') : page.index("</table>", page.index('id="locked-table"'))]
    assert 'aria-label="Unlock zhengzhou"' in locked
    answer = admin.post(
        "/admin/security/unlock?lang=en", data={"username": "zhengzhou", "csrf_token": csrf_token(page)}
    )
    assert answer.status_code == 303
    after = admin.get(answer.headers["Location"] + "?lang=en").get_data(as_text=True)
    assert "Unlocked zhengzhou." in after and 'id="no-locks"' in after
    assert visitor.login("zhengzhou", PASSWORD).status_code == 302
    session.expire_all()
    unlocked = session.exec(select(LoginEvent).where(LoginEvent.outcome == "unlocked")).one()
    assert unlocked.user_agent == "/admin/security by admin" and unlocked.user_id is not None
    # A name no account has is refused with a message, and nothing is recorded.
    again = admin.post(
        "/admin/security/unlock?lang=en", data={"username": "nobody-here", "csrf_token": csrf_token(after)}
    )
    assert "No account is named nobody-here" in admin.get(again.headers["Location"] + "?lang=en").get_data(as_text=True)
    session.expire_all()
    assert len(session.exec(select(LoginEvent).where(LoginEvent.outcome == "unlocked")).all()) == 1


def test_the_admin_page_lists_filters_and_pages_the_trail(unlimited, session, browser_as):
    for i in range(55):
        trail.record(
            session=session,
            outcome=LoginOutcome.UNKNOWN_USER,
            username=f"guess-{i:02d}",
            client=trail.Client("203.0.113.9", "bot/1"),
        )
    session.commit()
    visitor = Visitor(unlimited)
    for _ in range(5):
        visitor.login("luoyang", WRONG)
    admin = browser_as("admin")
    admin.set_cookie("lang", "en")
    page = admin.get("/admin/security").get_data(as_text=True)
    assert "Login security" in page
    assert re.search(r'id="locked-table".*luoyang', page, re.S)  # locked now
    assert "61 event(s)" in page and "page 1 of 2" in page  # 55 + 5 + the admin's own login
    assert page.count('<tr class="outcome-') == 50 and 'rel="next"' in page
    second = admin.get("/admin/security?page=2").get_data(as_text=True)
    assert second.count('<tr class="outcome-') == 11 and "guess-00" in second
    by_user = admin.get("/admin/security?user=luoyang").get_data(as_text=True)
    assert "5 event(s)" in by_user and by_user.count("Wrong password</td>") == 5
    by_outcome = admin.get("/admin/security?outcome=success").get_data(as_text=True)
    assert "1 event(s)" in by_outcome and ">admin</td>" in by_outcome
    nonsense = admin.get("/admin/security?outcome=nonsense&page=x")
    assert nonsense.status_code == 200 and "61 event(s)" in nonsense.get_data(as_text=True)
    assert 'href="/admin/security"' in page  # the administrators' menu links to it


@pytest.mark.parametrize("who", ["zhengzhou", "reviewer1"])
def test_the_admin_page_is_refused_to_everyone_else(app, browser_as, who):
    assert browser_as(who).get("/admin/security").status_code == 403
    anonymous = app.test_client().get("/admin/security")
    assert anonymous.status_code == 302 and "/login" in anonymous.headers["Location"]


# --- concurrency -------------------------------------------------------------------------------------------------


def test_concurrent_wrong_passwords_are_all_counted_and_no_more_than_the_limit_are_checked(unlimited, session):
    """Twelve guesses at once (threads, one connection each): exactly five passwords are checked, the rest are
    refused as locked, and the count says five (PostgreSQL's row lock; SQLite's single writer)."""
    guessers = [Visitor(unlimited, address=f"192.0.2.{i}") for i in range(12)]
    start = threading.Barrier(len(guessers))
    answers: list[int] = []
    errors: list[BaseException] = []

    def guess(visitor: Visitor) -> None:
        try:
            start.wait(timeout=30)
            answers.append(visitor.login("zhengzhou", WRONG).status_code)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=guess, args=(g,)) for g in guessers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert answers == [401] * 12
    outcomes = _outcomes(session, "zhengzhou")
    assert sorted(outcomes) == ["locked"] * 7 + ["wrong_password"] * 5
    session.expire_all()
    throttle = session.get(LoginThrottle, "zhengzhou")
    assert throttle.failures == 5 and throttle.locked_until is not None


def test_a_name_not_tried_for_a_day_is_forgotten_unless_it_is_locked(unlimited, session, clock):
    unlimited.config["LOGIN_LOCKOUT_MINUTES"] = 3 * 24 * 60  # a lock that outlasts the day
    visitor = Visitor(unlimited)
    for _ in range(2):
        visitor.login("nobody-old", WRONG)
    for _ in range(5):
        visitor.login("nobody-locked", WRONG)
    clock.advance(hours=12)
    visitor.login("nobody-recent", WRONG)
    clock.advance(hours=12, minutes=1)  # a day and a minute after the first two names were last tried

    visitor.login("zhengzhou", WRONG)  # any attempt forgets what is stale

    session.expire_all()
    kept = {row.username: row for row in session.exec(select(LoginThrottle))}
    assert "nobody-old" not in kept
    assert kept["nobody-locked"].failures == 5 and kept["nobody-locked"].locked_until is not None
    assert kept["nobody-recent"].failures == 1 and kept["zhengzhou"].failures == 1
    clock.advance(days=3)  # the lock has passed and the name has not been tried since: forgotten too
    visitor.login("zhengzhou", PASSWORD)
    session.expire_all()
    assert set(session.exec(select(LoginThrottle.username)).all()) == {"zhengzhou"}


# --- API tokens nobody has -----------------------------------------------------------------------------------------


def _with_token(app, token: str, address: str):
    return app.test_client().get(
        "/api/v1/filings",
        headers={"Authorization": f"Bearer {token}", "User-Agent": "pipeline/2.0"},
        environ_base={"REMOTE_ADDR": address},
    )


def test_an_unknown_api_token_is_refused_and_recorded_without_the_token(app, session, token_for):
    guessed = "rgt_" + "x" * 40
    answer = _with_token(app, guessed, "198.51.100.7")
    assert answer.status_code == 401 and answer.get_json()["type"].endswith(":bad_token")
    session.expire_all()
    events = session.exec(select(LoginEvent).where(LoginEvent.outcome == "bad_token")).all()
    assert [(e.client_address, e.user_agent, e.username) for e in events] == [("198.51.100.7", "pipeline/2.0", "")]
    kept = " ".join(str(getattr(e, column)) for e in events for column in LoginEvent.model_fields)
    assert "xxxxxxxx" not in kept  # no part of the token, in any column
    assert _with_token(app, token_for("zhengzhou"), "198.51.100.7").status_code == 200  # a real one: nothing noted
    session.expire_all()
    assert len(session.exec(select(LoginEvent).where(LoginEvent.outcome == "bad_token")).all()) == 1


def test_an_address_sending_too_many_unknown_tokens_gets_429_and_fills_no_more_of_the_trail(app, session, token_for):
    app.config["TOKEN_FAILURE_RATE_LIMIT"] = "3 per minute"
    answers = [_with_token(app, f"rgt_guess{n}", "203.0.113.9") for n in range(5)]
    assert [a.status_code for a in answers] == [401, 401, 401, 429, 429]
    refused = answers[-1]
    assert refused.mimetype == "application/problem+json" and refused.get_json()["type"].endswith(
        ":too_many_bad_tokens"
    )
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    session.expire_all()
    recorded = session.exec(select(LoginEvent).where(LoginEvent.outcome == "bad_token")).all()
    assert [e.client_address for e in recorded] == ["203.0.113.9"] * 3
    # Another address is counted on its own; a real token from the limited address still works.
    assert _with_token(app, "rgt_other", "203.0.113.10").status_code == 401
    assert _with_token(app, token_for("zhengzhou"), "203.0.113.9").status_code == 200
