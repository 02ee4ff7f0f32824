"""Parts of the library's pages kept for the next page that shows them: each result row of the list and of the
search, as written for one language (``library/index.html``), and each search's ranking (:class:`Rankings`). A
row is the same on every page that lists its filing — the first page, a city's, a search's, in any order — and
writing twenty of them was most of making a page of the list. Both are kept under the version of the public
library, as a page is (registry.library.cache): made before a decision, never shown after it. They do not depend
on who reads, so staff's lists use them too.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Sequence

from flask import Flask, request
from flask_babel import get_locale
from markupsafe import Markup

from registry.db import utcnow
from registry.library import cache, page_cache

_MAX_BYTES = 16 * 1024 * 1024  # ~1.3 kB a row: every public filing in both languages, five times over
_RANKINGS_MAX_BYTES = 16 * 1024 * 1024  # 8 bytes a match: 200 searches matching all 10,000 filings


class _Kept:
    """What one page keeps in ``store_for``'s cache (registry.library.cache), read at the version of its request;
    nothing when the cache is off."""

    def __init__(self, app: Flask, store_for: Callable[..., cache.PageCache], max_bytes: int) -> None:
        seconds = page_cache.cache_seconds(app)
        self.enabled = seconds > 0
        if self.enabled:
            self.store = store_for(app.extensions["registry"].engine, ttl=seconds, max_bytes=max_bytes)
            self.version = page_cache.library_version(app)
        self.now = utcnow()


class Rows(_Kept):
    """The rows of one page: ``get`` the one kept for a row, or ``keep`` the one just written (the template does
    both, so the row's markup stays in the template)."""

    def __init__(self, app: Flask) -> None:
        super().__init__(app, cache.fragments_for, _MAX_BYTES)
        self.language, self.root = str(get_locale()), request.script_root

    def _key(self, row: dict) -> tuple:
        return ("row", row["filing_id"], self.language, self.root)

    def get(self, row: dict) -> Markup | None:
        return self.store.get(self._key(row), self.version, self.now) if self.enabled else None

    def keep(self, row: dict, written: Markup) -> Markup:
        if self.enabled:
            self.store.put(self._key(row), self.version, written, len(written))
        return written


class Rankings(_Kept):
    """Each search's ranking, kept under the library's version (registry.library.search.find's ``remember``): the
    ids of the filings it matches, best first. A search ranks every match whatever the page (PostgreSQL reads each
    match's search vector; SQLite scores each with bm25), so its next pages, the same search in the other
    language and through the API are slices of one ranking."""

    def __init__(self, app: Flask) -> None:
        super().__init__(app, cache.rankings_for, _RANKINGS_MAX_BYTES)

    def __call__(self, key: tuple, make: Callable[[], Sequence[int]]) -> Sequence[int]:
        if not self.enabled:
            return make()
        kept = self.store.get(key, self.version, self.now)
        if kept is None:
            kept = array("q", make())
            self.store.put(key, self.version, kept, kept.itemsize * len(kept) + 64)
        return kept
