"""Fixtures: an app on a freshly migrated database per test (SQLite, and PostgreSQL when configured), clients
per role, and factories for filings in each state.

PostgreSQL: set REGISTRY_TEST_POSTGRES_URL to a server URL whose user may create databases
(e.g. postgresql://registry:registry@127.0.0.1:5432/postgres). Without it the PostgreSQL variants skip on a
developer's machine and fail when CI=true.
"""

from __future__ import annotations

import copy
import os
import re
import shutil
import sys
import uuid
from dataclasses import dataclass

import pytest
import sqlalchemy as sa
from argon2 import PasswordHasher
from sqlmodel import Session

from registry import create_app, demo, migrations
from registry.accounts import service as accounts
from registry.accounts.models import User
from registry.cities import service as cities
from registry.db import make_engine

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}

if sys.version_info < (3, 12):
    # CPython 3.11 keeps the AST constructor's recursion counter per interpreter, not per thread
    # (python/cpython#106905), so two threads building ASTs at once can raise "SystemError: AST constructor
    # recursion depth mismatch" in either. 3.11's traceback module parses the failing line (ast.parse) to place its
    # ^^^ carets whenever a traceback is formatted — e.g. when a background thread (a worker, a mailer, a garbage-
    # collected connection to a dropped test database) logs an exception while the main thread imports a test
    # module. The carets are cosmetic; without them no traceback is parsed, so the tests cannot trip on the bug.
    import traceback

    traceback._extract_caret_anchors_from_line_segment = lambda _segment: None
POSTGRES_URL = os.environ.get("REGISTRY_TEST_POSTGRES_URL")
PASSWORD = "correct-horse-battery"
TEMPLATE_DB = f"registry_test_template_{os.getpid()}"  # one per test run, so parallel runs do not collide

# username, role, city
PEOPLE = {
    "zhengzhou": ("city", "410100"),
    "luoyang": ("city", "410300"),
    "reviewer1": ("reviewer", None),
    "reviewer2": ("reviewer", None),
    "admin": ("admin", None),
}
ROLE_USER = {"city": "zhengzhou", "reviewer": "reviewer1", "admin": "admin"}


def require_service(reason: str) -> None:
    """Skip on a developer's machine; fail in CI, where every service must be there."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: this must run, not skip)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("template") / "registry.sqlite3"
    engine = make_engine(f"sqlite:///{path}")
    migrations.upgrade(engine)
    engine.dispose()
    return str(path)


@pytest.fixture(scope="session")
def postgres_admin():
    """An AUTOCOMMIT engine on the server's maintenance database, for creating and dropping test databases."""
    if not POSTGRES_URL:
        require_service("REGISTRY_TEST_POSTGRES_URL is not set")
    admin = sa.create_engine(
        POSTGRES_URL.replace("postgresql://", "postgresql+psycopg://", 1), isolation_level="AUTOCOMMIT"
    )
    yield admin
    admin.dispose()


@pytest.fixture(scope="session")
def postgres_template(postgres_admin) -> str:
    with postgres_admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{TEMPLATE_DB}"'))
        conn.execute(sa.text(f'CREATE DATABASE "{TEMPLATE_DB}"'))
    engine = make_engine(_database_url(TEMPLATE_DB))
    migrations.upgrade(engine)
    engine.dispose()
    yield TEMPLATE_DB
    with postgres_admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{TEMPLATE_DB}" WITH (FORCE)'))


def _database_url(name: str) -> str:
    base = sa.engine.make_url(POSTGRES_URL.replace("postgresql://", "postgresql+psycopg://", 1))
    return base.set(database=name).render_as_string(hide_password=False)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    """A migrated, empty database of its own for each test."""
    if request.param == "sqlite":
        target = tmp_path / "registry.sqlite3"
        shutil.copy(request.getfixturevalue("sqlite_template"), target)
        yield f"sqlite:///{target}"
        return
    template = request.getfixturevalue("postgres_template")
    admin = request.getfixturevalue("postgres_admin")
    name = f"registry_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    yield _database_url(name)
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def password_hash() -> str:
    return PasswordHasher().hash(PASSWORD)  # hashed once: argon2 is slow on purpose


LOG_ORIGIN = "registry.test/410000/decision-log"


@pytest.fixture(scope="session")
def log_key_file(tmp_path_factory) -> str:
    """The decision log's signing key for the test run (as `registry log keygen` writes one)."""
    from registry.decision_log import keys

    path = tmp_path_factory.mktemp("log-key") / "log-signing-key"
    keys.write_new_key(path, LOG_ORIGIN)
    return str(path)


@pytest.fixture
def app(database_url, tmp_path, password_hash, log_key_file):
    application = create_app(
        {
            "TESTING": True,
            "INSTANCE_PATH": str(tmp_path / "instance"),
            "DATABASE_URL": database_url,
            "SECRET_KEY": "test-secret-key",
            "MAX_MODEL_BYTES": 1024 * 1024,
            "LOG_SIGNING_KEY_FILE": log_key_file,
        }
    )
    seed_people(application.extensions["registry"].engine, password_hash)
    yield application
    application.extensions["registry"].engine.dispose()


def seed_people(engine, password_hash: str) -> None:
    """The Henan cities and the test's people (PEOPLE, all with PASSWORD) in a migrated database."""
    with Session(engine) as session:
        for code, zh, en in cities.HENAN:
            cities.add_city(session=session, code=code, name_zh=zh, name_en=en, province_code="410000")
        for username, (role, city) in PEOPLE.items():
            session.add(
                User(username=username, display_name=username, role=role, city_code=city, password_hash=password_hash)
            )
        session.commit()


@pytest.fixture
def engine(app):
    return app.extensions["registry"].engine


@pytest.fixture
def session(engine):
    with Session(engine, expire_on_commit=False) as s:
        yield s


class ApiClient:
    """A test client that sends one account's bearer token (or none, for the public)."""

    def __init__(self, client, token: str | None) -> None:
        self.client = client
        self.token = token

    def _headers(self, headers):
        merged = dict(headers or {})
        if self.token:
            merged.setdefault("Authorization", f"Bearer {self.token}")
        return merged

    def open(self, method: str, url: str, *, headers=None, **kwargs):
        return self.client.open(url, method=method, headers=self._headers(headers), **kwargs)

    def get(self, url, **kw):
        return self.open("GET", url, **kw)

    def post(self, url, **kw):
        return self.open("POST", url, **kw)

    def patch(self, url, **kw):
        return self.open("PATCH", url, **kw)

    def delete(self, url, **kw):
        return self.open("DELETE", url, **kw)


@pytest.fixture
def token_for(app):
    def make(username: str) -> str:
        with Session(app.extensions["registry"].engine) as s:
            user = accounts.get_user_by_name(session=s, username=username)
            token, _ = accounts.create_token(session=s, user=user)
            s.commit()
        return token

    return make


@pytest.fixture
def api(app, token_for):
    """``api("zhengzhou")`` → a client acting with that account's token; ``api(None)`` → the public."""

    def make(username: str | None) -> ApiClient:
        return ApiClient(app.test_client(), token_for(username) if username else None)

    return make


CSRF_INPUT = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"|name="csrf_token" value="([^"]+)"')


def csrf_token(html: str) -> str:
    match = CSRF_INPUT.search(html)
    assert match, "page has no CSRF token"
    return match.group(1) or match.group(2)


@pytest.fixture
def browser_as(app):
    """``browser_as("zhengzhou")`` → a test client logged in through the real login form (CSRF included)."""

    return lambda username: logged_in_client(app, username)


def logged_in_client(app, username: str | None):
    """A test client of ``app`` logged in as ``username`` through the real login form (None: anonymous)."""
    client = app.test_client()
    if username is None:
        return client
    page = client.get("/login")
    response = client.post(
        "/login",
        data={"username": username, "password": PASSWORD, "csrf_token": csrf_token(page.get_data(as_text=True))},
    )
    assert response.status_code == 302, response.get_data(as_text=True)[:500]
    return client


@dataclass
class Documents:
    technical_document: dict
    test_report: dict


@pytest.fixture
def documents():
    """A complete, valid technical document and test report for Zhengzhou (410100)."""
    technical, reports = demo.documents()
    for doc, report in zip(technical, reports, strict=True):
        if doc["city_code"] == "410100":
            return Documents(copy.deepcopy(doc), copy.deepcopy(report))
    raise AssertionError("the demo data has no Zhengzhou filing")


@pytest.fixture
def filing_in(app, documents):
    """``filing_in("under_review")`` → the id of a Zhengzhou filing walked to that state through the service."""

    def make(state: str, *, city_user: str = "zhengzhou", document=None, report=None) -> int:
        doc = copy.deepcopy(document or documents.technical_document)
        if city_user == "luoyang":
            doc["city_code"] = "410300"
        with Session(app.extensions["registry"].engine, expire_on_commit=False) as s:
            filing = demo.file_to_state(
                session=s,
                content=app.extensions["registry"].content,
                city_user=city_user,
                reviewer_user="reviewer1",
                technical_document=doc,
                test_report=copy.deepcopy(report or documents.test_report),
                state=state,
            )
            s.commit()
            return filing.id

    return make
