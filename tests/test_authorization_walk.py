"""Every route, for every role (the anonymous public included): allowed or denied, as DESIGN.md says.

The table below is written by hand, independently of the ``@allow`` declarations beside the views; a route
missing from it fails the walk, so a new route cannot ship without a decision about who may call it.
"Allowed" means the request got past authorisation (any answer but 401/403 or a redirect to the login page);
what the route then does with a thin request (422, 409, 400 for a form without its CSRF token) is tested elsewhere.
"""

import pytest
from sqlmodel import Session

from registry import create_app
from registry.accounts import service as accounts

ANON, CITY, REVIEWER, ADMIN = "anonymous", "city", "reviewer", "admin"
EVERYONE = {ANON, CITY, REVIEWER, ADMIN}
STAFF = {CITY, REVIEWER, ADMIN}

# (method, rule) → roles that may call it.
EXPECTED = {
    ("GET", "/"): EVERYONE,
    ("GET", "/static/<path:filename>"): EVERYONE,
    ("GET", "/healthz"): EVERYONE,
    ("GET", "/login"): EVERYONE,
    ("POST", "/login"): EVERYONE,
    ("POST", "/logout"): STAFF,
    ("POST", "/language"): EVERYONE,
    ("GET", "/account"): STAFF,
    ("POST", "/account"): STAFF,
    ("POST", "/account/tokens/<int:token_id>/revoke"): STAFF,
    ("GET", "/filings"): STAFF,
    ("GET", "/filings/new"): {CITY},
    ("POST", "/filings/new"): {CITY},
    ("GET", "/filings/<int:filing_id>"): STAFF,
    ("GET", "/filings/<int:filing_id>/edit"): {CITY},
    ("POST", "/filings/<int:filing_id>/edit"): {CITY},
    ("POST", "/filings/<int:filing_id>/attachments"): {CITY},
    ("POST", "/filings/<int:filing_id>/actions/<action>"): {CITY, REVIEWER},
    ("POST", "/filings/<int:filing_id>/comments"): {CITY, REVIEWER},
    ("GET", "/schemas/"): EVERYONE,
    ("GET", "/schemas/<name>.json"): EVERYONE,
    ("GET", "/api/v1/openapi.json"): EVERYONE,
    # --- the public decision log (issue 5): anyone verifies, nobody writes
    ("GET", "/api/v1/log/checkpoint"): EVERYONE,
    ("GET", "/api/v1/log/public-key"): EVERYONE,
    ("GET", "/api/v1/log/entries"): EVERYONE,
    ("GET", "/api/v1/log/entries/<int:index>/proof"): EVERYONE,
    ("GET", "/api/v1/log/proof/inclusion"): EVERYONE,
    ("GET", "/api/v1/log/proof/consistency"): EVERYONE,
    ("GET", "/api/v1/cities"): EVERYONE,
    ("GET", "/api/v1/lifecycle"): EVERYONE,
    ("GET", "/api/v1/me"): STAFF,
    ("GET", "/api/v1/tokens"): STAFF,
    ("DELETE", "/api/v1/tokens/<int:token_id>"): STAFF,
    ("GET", "/api/v1/filings"): STAFF,
    ("POST", "/api/v1/filings"): {CITY},
    ("GET", "/api/v1/filings/<int:filing_id>"): STAFF,
    ("PATCH", "/api/v1/filings/<int:filing_id>"): {CITY},
    ("POST", "/api/v1/filings/<int:filing_id>/attachments"): {CITY},
    ("POST", "/api/v1/filings/<int:filing_id>/submit"): {CITY},
    ("POST", "/api/v1/filings/<int:filing_id>/actions/<action>"): {CITY, REVIEWER},
    ("GET", "/api/v1/filings/<int:filing_id>/history"): STAFF,
    ("GET", "/api/v1/filings/<int:filing_id>/comments"): STAFF,
    ("POST", "/api/v1/filings/<int:filing_id>/comments"): {CITY, REVIEWER},
    # --- audit jobs (issue 4): add rows here
    ("GET", "/api/v1/reference-datasets"): {REVIEWER, ADMIN},
    ("GET", "/api/v1/filings/<int:filing_id>/audits"): STAFF,
    ("POST", "/api/v1/filings/<int:filing_id>/audits"): {REVIEWER},
    ("GET", "/api/v1/audits/<int:job_id>"): STAFF,
    ("GET", "/api/v1/audits/<int:job_id>/report"): STAFF,
    ("POST", "/filings/<int:filing_id>/audits"): {REVIEWER},
    ("GET", "/audits/<int:job_id>"): STAFF,
    ("GET", "/audits/compare"): STAFF,
    ("GET", "/api/v1/reaudits/attention"): {REVIEWER, ADMIN},
    # --- reference data sets an administrator uploads: city teams and the public are denied on every one
    ("POST", "/api/v1/reference-datasets"): {ADMIN},
    ("POST", "/api/v1/reference-datasets/<name>/retire"): {ADMIN},
    ("GET", "/admin/reference-datasets"): {ADMIN},
    ("POST", "/admin/reference-datasets"): {ADMIN},
    ("POST", "/admin/reference-datasets/<name>/retire"): {ADMIN},
    ("GET", "/admin/security"): {ADMIN},  # the login trail
    ("POST", "/admin/security/unlock"): {ADMIN},
    # --- notifications: each account's own inbox (another's notification is 404, tested in test_notifications)
    ("GET", "/inbox"): STAFF,
    ("POST", "/inbox/<int:notification_id>/read"): STAFF,
    ("POST", "/inbox/read-all"): STAFF,
    ("GET", "/api/v1/notifications"): STAFF,
    ("POST", "/api/v1/notifications/<int:notification_id>/read"): STAFF,
    ("POST", "/api/v1/notifications/read-all"): STAFF,
    # --- decisions (issue 4): add rows here
    ("POST", "/api/v1/filings/<int:filing_id>/decisions"): {REVIEWER},
    ("GET", "/api/v1/filings/<int:filing_id>/decisions"): STAFF,
    ("GET", "/api/v1/decisions/<int:decision_id>"): STAFF,
    ("POST", "/api/v1/decisions/<int:decision_id>/countersign"): {REVIEWER},
    ("POST", "/api/v1/decisions/<int:decision_id>/withdraw"): {REVIEWER},
    ("POST", "/filings/<int:filing_id>/decisions"): {REVIEWER},
    ("POST", "/decisions/<int:decision_id>/countersign"): {REVIEWER},
    ("POST", "/decisions/<int:decision_id>/withdraw"): {REVIEWER},
    ("GET", "/decisions/<int:decision_id>/letter"): STAFF,
    # --- the review queue's re-audits and the PDF letter (the same readers as the HTML letter)
    ("GET", "/decisions/<int:decision_id>/letter.pdf"): STAFF,
    ("GET", "/api/v1/decisions/<int:decision_id>/letter.pdf"): STAFF,
    ("GET", "/reaudits"): {REVIEWER, ADMIN},
    # --- the public library's list and entry pages (issue 6 A): anyone reads, without an account
    ("GET", "/library"): EVERYONE,
    ("GET", "/library/<filing_number>"): EVERYONE,
    ("GET", "/library/<filing_number>/audits/<int:job_id>"): EVERYONE,
    # --- raise a concern (issue 6 C): anyone sends one without an account; only reviewers mark it seen or answered
    ("GET", "/library/<filing_number>/concern"): EVERYONE,
    ("POST", "/library/<filing_number>/concern"): EVERYONE,
    ("GET", "/library/<filing_number>/concern/sent"): EVERYONE,
    ("POST", "/filings/<int:filing_id>/concerns/<int:concern_id>/status"): {REVIEWER},
    # --- large text and high contrast, remembered in a cookie like the language (issue 6 C)
    ("POST", "/display"): EVERYONE,
    # --- the public library's open data, API, feed, standings and statistics (issue 6 B): anyone reads, nobody writes
    ("GET", "/library.json"): EVERYONE,
    ("GET", "/library.csv"): EVERYONE,
    ("GET", "/library/<filing_number>.json"): EVERYONE,
    ("GET", "/library/<filing_number>.csv"): EVERYONE,
    ("GET", "/library/feed.atom"): EVERYONE,
    ("GET", "/library/standings"): EVERYONE,
    ("GET", "/library/statistics"): EVERYONE,
    ("GET", "/api/v1/library"): EVERYONE,
    ("GET", "/api/v1/library/<filing_number>"): EVERYONE,
    ("GET", "/api/v1/library/standings"): EVERYONE,
    ("GET", "/api/v1/library/statistics"): EVERYONE,
}
ROLE_USER = {CITY: "zhengzhou", REVIEWER: "reviewer1", ADMIN: "admin"}
# The step each role would take on a submitted filing (the route admits both kinds of actor).
ROLE_ACTION = {CITY: "withdraw", REVIEWER: "start_review", ADMIN: "start_review", ANON: "start_review"}


def _routes():
    app = create_app({"INSTANCE_PATH": "/tmp/registry-route-listing", "SECRET_KEY": "x", "DATABASE_URL": "sqlite://"})
    for rule in app.url_map.iter_rules():
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            yield method, rule.rule


ROUTES = sorted(set(_routes()))


def test_every_route_has_an_expectation_and_every_expectation_a_route():
    assert set(ROUTES) == set(EXPECTED)


def _url(rule: str, role: str, filing_id: int, token_id: int) -> str:
    return (
        rule.replace("<int:filing_id>", str(filing_id))
        .replace("<int:token_id>", str(token_id))
        .replace("<int:decision_id>", "1")  # none exists: an admitted caller gets 404, a refused one 401/403
        .replace("<int:notification_id>", "1")  # none of the caller's: allowed roles get 404, denied ones 401/403
        .replace("<int:index>", "0")  # an empty log: everyone gets 404 (public routes are never 401/403)
        .replace("<int:job_id>", "1")  # no such audit: allowed roles get 404, denied ones 401/403
        .replace("<filing_number>", "豫算备410100-2026-0001")  # the filing is submitted, not public: 404 for all
        .replace("<int:concern_id>", "1")  # no such concern: a reviewer gets 400/404, everyone else 401/403
        .replace("<action>", ROLE_ACTION[role])
        .replace("<name>", "technical-document")
        .replace("<path:filename>", "registry.css")
    )


# Access is decided in one place (registry.access, before any database work of the view), so one database is
# enough for the walk; each feature's own tests run on SQLite and PostgreSQL.
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("role", [ANON, CITY, REVIEWER, ADMIN])
@pytest.mark.parametrize(("method", "rule"), ROUTES)
def test_route_is_allowed_or_denied_for_role(app, filing_in, token_for, browser_as, method, rule, role):
    filing_id = filing_in("submitted")
    token_id = 0
    if role != ANON:
        token_for(ROLE_USER[role])  # a spare token of the caller's own, for the revoke routes
        with Session(app.extensions["registry"].engine) as s:
            user = accounts.get_user_by_name(session=s, username=ROLE_USER[role])
            token_id = accounts.list_tokens(session=s, user_id=user.id)[0].id
    url = _url(rule, role, filing_id, token_id)
    if rule.startswith("/api/"):
        client = app.test_client()
        headers = {"Authorization": f"Bearer {token_for(ROLE_USER[role])}"} if role != ANON else {}
    else:
        client = browser_as(ROLE_USER.get(role))
        headers = {}
    response = client.open(url, method=method, headers=headers)
    denied = response.status_code in (401, 403) or (
        response.status_code == 302 and "/login" in response.headers.get("Location", "")
    )
    allowed = role in EXPECTED[(method, rule)]
    response.close()
    assert response.status_code < 500, response.get_data(as_text=True)[:300]
    assert denied != allowed, f"{role} {method} {url} → {response.status_code}"
