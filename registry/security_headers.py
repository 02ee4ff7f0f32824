"""Security headers on every answer: no framing, no sniffing, no inline script, no referrer leaks."""

from __future__ import annotations

from flask import Flask, request

# The pages need no JavaScript at all; styles come from our own static folder.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'none'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'; img-src 'self' data:; style-src 'self'"
)


def init_app(app: Flask) -> None:
    @app.after_request
    def _headers(response):
        headers = response.headers
        headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("Referrer-Policy", "same-origin")
        if request.is_secure:
            headers.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
        if request.path.startswith("/api/") and response.status_code < 400 and request.method == "GET":
            headers.setdefault("Cache-Control", "no-store" if request.headers.get("Authorization") else "no-cache")
        return response
