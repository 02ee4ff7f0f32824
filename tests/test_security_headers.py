"""Every answer carries the security headers; pages run no script and cannot be framed."""

import pytest


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
