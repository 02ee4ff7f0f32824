"""Every answer carries the security headers; pages run no script and cannot be framed.

The walk takes every GET route of ``app.url_map`` (pages, API, exports, downloads, static files, and the errors a
thin request gets), fills its parameters from a filing taken to a public decision, asks as a caller who may call it,
and checks the headers on each answer; a route with a parameter the walk cannot fill fails, so a new route is
covered as soon as it exists. HSTS is sent only when the request came over TLS: directly, or through a trusted
reverse proxy (``PROXY_HOPS``) that says so in X-Forwarded-Proto.
"""

from __future__ import annotations

import re

import pytest
from sqlmodel import Session, select

from registry import create_app
from registry.access import allowed_roles
from registry.accounts import service as accounts
from registry.authz import PUBLIC
from registry.decisions.models import Decision
from registry.filings.models import Filing
from registry.notifications.models import Notification

# The caller the walk uses for a route, by the roles it admits (the first that fits).
CALLERS = (("reviewer", "reviewer1"), ("city", "zhengzhou"), ("admin", "admin"))
# Requests that end in an error page, a problem or a redirect to the login page, which must carry the headers too.
ERRORS = (
    ("GET", "/no-such-page"),
    ("GET", "/api/v1/no-such-thing"),
    ("GET", "/filings/999999"),
    ("DELETE", "/api/v1/filings"),
    ("GET", "/static/no-such-file.css"),
)
REFERRER_POLICIES = {"no-referrer", "same-origin", "strict-origin", "strict-origin-when-cross-origin"}


def build_world(app, api, filing_in) -> dict[str, str]:
    """A filing taken to a public decision (with its letter, log entry and notifications), one under review with a
    queued audit, and an API token: the values for every route parameter, as ``{"<converter:name>": value}``."""
    approved = filing_in("approved")
    reviewing = filing_in("under_review")
    job = api("reviewer1").post(
        f"/api/v1/filings/{reviewing}/audits", json={"dataset": "german-credit", "replicates": 20}
    )
    job_id = job.get_json()["id"] if job.status_code in (200, 201, 202) else 0
    engine = app.extensions["registry"].engine
    with Session(engine) as s:
        filing = s.get(Filing, approved)
        decision = s.exec(select(Decision).where(Decision.filing_id == approved)).first()
        token, record = accounts.create_token(session=s, user=accounts.get_user_by_name(session=s, username="admin"))
        s.commit()
        notification = s.exec(select(Notification).order_by(Notification.id)).first()
        return {
            "<int:filing_id>": str(approved),
            "<int:decision_id>": str(decision.id),
            "<int:job_id>": str(job_id),
            "<int:token_id>": str(record.id),
            "<int:notification_id>": str(notification.id if notification else 0),
            "<int:concern_id>": "0",
            "<int:index>": "0",
            "<filing_number>": filing.filing_number,
            "<path:filing_number>": filing.filing_number,
            "<name>": "technical-document",
            "<path:filename>": "registry.css",
            "<action>": "start_review",
        }


PARAMETER = re.compile(r"<[^>]+>")


def fill(rule: str, values: dict[str, str]) -> str:
    """The rule with every parameter filled; fails naming a parameter the walk does not know."""
    for parameter in PARAMETER.findall(rule):
        assert parameter in values, f"{rule}: the walk has no value for {parameter}; add one to build_world"
        rule = rule.replace(parameter, values[parameter])
    return rule


def caller_for(app, endpoint: str) -> str | None:
    """The account the walk calls a route as (None: anonymous), from the roles its ``@allow`` admits."""
    roles = allowed_roles(app, endpoint) or frozenset()
    if PUBLIC in roles:
        return None
    for role, username in CALLERS:
        if role in roles:
            return username
    raise AssertionError(f"{endpoint} admits no role the walk knows: {sorted(roles)}")


def get_routes(app) -> list[tuple[str, str]]:
    return sorted(
        {(rule.rule, rule.endpoint) for rule in app.url_map.iter_rules() if "GET" in rule.methods}, key=lambda r: r
    )


def assert_headers(response, where: str, *, secure: bool) -> None:
    headers = response.headers
    csp = headers.get("Content-Security-Policy", "")
    assert "frame-ancestors 'none'" in csp, f"{where}: CSP {csp!r}"
    assert "script-src 'none'" in csp or "default-src 'none'" in csp, f"{where}: CSP {csp!r} allows scripts"
    assert "object-src 'none'" in csp or "default-src 'none'" in csp, f"{where}: CSP {csp!r} allows plugins"
    assert headers.get("X-Content-Type-Options") == "nosniff", where
    assert headers.get("X-Frame-Options") == "DENY", where
    assert headers.get("Referrer-Policy") in REFERRER_POLICIES, (
        f"{where}: Referrer-Policy {headers.get('Referrer-Policy')}"
    )
    hsts = headers.get("Strict-Transport-Security")
    if secure:
        assert hsts and re.match(r"max-age=(\d+)", hsts) and int(re.match(r"max-age=(\d+)", hsts)[1]) >= 15552000, (
            f"{where}: HSTS {hsts!r} over TLS"
        )
    else:
        assert hsts is None, f"{where}: HSTS over plain HTTP"


@pytest.mark.parametrize("path", ["/", "/login", "/api/v1/openapi.json", "/schemas/filing.json", "/api/v1/filings"])
def test_security_headers_on_pages_api_and_errors(app, path):
    response = app.test_client().get(path)
    csp = response.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp and "script-src 'none'" in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "Strict-Transport-Security" not in response.headers  # only behind TLS


def test_hsts_behind_tls(app):
    response = app.test_client().get("/", base_url="https://registry.example")
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")


def test_a_callers_api_answers_are_not_cached(api):
    assert api("zhengzhou").get("/api/v1/filings").headers["Cache-Control"] == "no-store"


# The headers are set in one place (after every request), the same on either database: the walk runs on one.
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_every_get_route_and_error_carries_the_headers_over_http_and_https(app, api, browser_as, filing_in, token_for):
    values = build_world(app, api, filing_in)
    clients: dict[str | None, object] = {}
    tokens: dict[str, str] = {}
    walked = 0
    for rule, endpoint in get_routes(app):
        url = fill(rule, values)
        who = caller_for(app, endpoint)
        headers = {}
        if url.startswith("/api/"):
            client = clients.setdefault("api", app.test_client())
            if who:
                headers["Authorization"] = f"Bearer {tokens.setdefault(who, token_for(who))}"
        else:
            client = clients.get(who) or clients.setdefault(who, browser_as(who))
        for secure in (False, True):
            base = "https://registry.example" if secure else "http://localhost"
            response = client.get(url, headers=headers, base_url=base)
            where = f"GET {url} as {who or 'anonymous'} → {response.status_code}"
            assert response.status_code < 500, where
            assert response.status_code not in (401, 403), where  # the walk asked as someone the route admits
            assert_headers(response, where, secure=secure)
            response.close()
            walked += 1
    anonymous = app.test_client()
    for method, url in ERRORS:
        for secure in (False, True):
            base = "https://registry.example" if secure else "http://localhost"
            response = anonymous.open(url, method=method, base_url=base)
            assert 300 <= response.status_code < 500, f"{method} {url} → {response.status_code}"
            assert_headers(response, f"{method} {url} → {response.status_code}", secure=secure)
    assert walked >= 2 * 40  # the walk really covered the app's GET routes


def test_a_downloaded_pdf_and_proof_are_what_they_say_and_never_rendered_as_a_page(app, api, filing_in):
    values = build_world(app, api, filing_in)
    letter = api("reviewer1").get(fill("/api/v1/decisions/<int:decision_id>/letter.pdf", values))
    assert letter.status_code == 200 and letter.mimetype == "application/pdf"
    assert letter.get_data().startswith(b"%PDF-")
    assert letter.headers["X-Content-Type-Options"] == "nosniff"
    proof = app.test_client().get("/api/v1/log/entries/0/proof")
    assert proof.status_code == 200 and not proof.mimetype.startswith("text/html")
    assert proof.headers["Content-Disposition"].startswith("attachment")
    assert proof.headers["X-Content-Type-Options"] == "nosniff"


def _proxied_app(app, hops: int):
    config = {
        key: app.config[key]
        for key in ("TESTING", "INSTANCE_PATH", "DATABASE_URL", "SECRET_KEY", "MAX_MODEL_BYTES", "LOG_SIGNING_KEY_FILE")
    }
    return create_app(config | {"PROXY_HOPS": hops})


FORWARDED_TLS = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.7", "X-Forwarded-Host": "registry.example"}


@pytest.mark.parametrize("path", ["/", "/library", "/login", "/api/v1/library", "/no-such-page"])
def test_hsts_behind_a_trusted_proxy_that_says_it_came_over_tls(app, path):
    behind_proxy = _proxied_app(app, 1)
    try:
        response = behind_proxy.test_client().get(path, headers=FORWARDED_TLS)
        assert_headers(response, f"GET {path} via a proxy over TLS", secure=True)
        plain = behind_proxy.test_client().get(path, headers={"X-Forwarded-Proto": "http"})
        assert_headers(plain, f"GET {path} via a proxy over HTTP", secure=False)
    finally:
        behind_proxy.extensions["registry"].engine.dispose()


def test_without_a_trusted_proxy_a_forwarded_header_is_not_believed(app):
    # PROXY_HOPS is 0 by default: a client that claims TLS in a header is still on plain HTTP.
    assert app.config["PROXY_HOPS"] == 0
    response = app.test_client().get("/", headers=FORWARDED_TLS)
    assert_headers(response, "GET / claiming TLS without a proxy", secure=False)


def test_behind_a_proxy_the_redirects_keep_the_clients_scheme_and_host(app):
    behind_proxy = _proxied_app(app, 1)
    try:
        response = behind_proxy.test_client().get("/filings", headers=FORWARDED_TLS)  # needs a login
        assert response.status_code == 302
        location = response.headers["Location"]
        assert location.startswith("/login") or location.startswith("https://registry.example/login"), location
    finally:
        behind_proxy.extensions["registry"].engine.dispose()
