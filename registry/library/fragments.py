"""Parts of the library's pages kept for the next page that shows them: each result row of the list and of the
search, as written for one language (``library/index.html``). A row is the same on every page that lists its
filing — the first page, a city's, a search's, in any order — and writing twenty of them was most of making a page
of the list. A row is kept under the library's version, as a page is (registry.library.cache): made before a
decision, never shown after it. It does not depend on who reads, so staff's lists use the rows too.
"""

from __future__ import annotations

from flask import Flask, request
from flask_babel import get_locale
from markupsafe import Markup

from registry.db import utcnow
from registry.library import cache, page_cache

_MAX_BYTES = 16 * 1024 * 1024  # ~1.3 kB a row: every public filing in both languages, five times over


class Rows:
    """The rows of one page: ``get`` the one kept for a row, or ``keep`` the one just written (the template does
    both, so the row's markup stays in the template)."""

    def __init__(self, app: Flask) -> None:
        seconds = page_cache.cache_seconds(app)
        self.enabled = seconds > 0
        if self.enabled:
            self.store = cache.fragments_for(app.extensions["registry"].engine, ttl=seconds, max_bytes=_MAX_BYTES)
            self.version = page_cache.library_version(app)
        self.now = utcnow()
        self.language, self.root = str(get_locale()), request.script_root

    def _key(self, row: dict) -> tuple:
        return ("row", row["filing_id"], self.language, self.root)

    def get(self, row: dict) -> Markup | None:
        return self.store.get(self._key(row), self.version, self.now) if self.enabled else None

    def keep(self, row: dict, written: Markup) -> Markup:
        if self.enabled:
            self.store.put(self._key(row), self.version, written, len(written))
        return written
