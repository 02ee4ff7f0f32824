"""The public library's pages and API answers, made once and served again while the library has not changed
(:mod:`registry.library.cache`): for anonymous readers only, per address, language and display mode.

A page carries the reader's own CSRF token (the language and display switches, the concern form): it is cached
with a placeholder in its place, which each answer replaces by a token of the reader's session — so a cached
page is the page the view would render for that reader. Set ``LIBRARY_CACHE_SECONDS`` to 0 to turn the cache off
(default 300). A page is kept compressed (an entry page of 70 kB takes 15 kB), so that ``LIBRARY_CACHE_MEGABYTES``
(default 256, per worker process) holds the pages readers come back to in a library of 10,000 filings; the pages
asked for most recently are kept uncompressed as well, in a quarter of that size (unpacking an entry page was two
thirds of the time of answering it from the cache).

Two doors lead to the same cache:

- :func:`serve`, in the views: on a miss it renders the page and offers it to the cache; on a hit it answers
  from the cache inside Flask's request (a first visit, which has no session yet and gets one).
- :class:`FrontCache`, a WSGI middleware around the Flask app: a reader who already has an anonymous session
  (no login, no remember-me cookie, no flashed message waiting) asking with GET for a page the cache holds at the
  library's current version is answered before Flask routes the request — no session to save, no database
  session, no access check to run again: the answer is the one the view gave, with the headers it was given
  (security headers included) and the reader's own token. Every other request goes on into the app.
"""

from __future__ import annotations

import functools
import secrets
import threading
import time
import zlib
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from flask import Flask, Response, current_app, g, make_response, request, session
from flask_wtf.csrf import generate_csrf
from itsdangerous import BadSignature, URLSafeTimedSerializer
from werkzeug.http import parse_cookie

from registry.db import utcnow
from registry.library import cache, shared_pages

# Letters and digits only: the same after HTML escaping.
PLACEHOLDER = "csrfslot" + secrets.token_hex(16)
_PLACEHOLDER_BYTES = PLACEHOLDER.encode("ascii")
_OFFER = "registry.page_cache.offer"  # the WSGI environ key by which a view offers its page to the front door
_UNTIL = "registry.page_cache.until"  # the environ key of the moment until which the page being made holds
# Headers of an answer that are the reader's own, never stored: the next reader gets their own.
_PRIVATE_HEADERS = frozenset({"set-cookie", "content-length"})
_LANGUAGE_COOKIE, _DISPLAY_COOKIE = "lang", "display"
# Answers from this size on are kept compressed: fast zlib (level 1, ~0.4 ms for an entry page; unpacking it again
# takes ~0.15 ms), as the cache holds what readers ask for again, and a page made again costs 10-20 ms.
_PACK_FROM = 4096
_PACK_LEVEL = 1
# Unpacking (0.15 ms for an entry page) was two thirds of an answer from the cache: the pages asked for most recently
# are also kept as they are, in a quarter of the size (a quarter of readers' pages take most of their asks).
_UNPACKED_SHARE = 4
_SHARED = "registry.library.shared_pages"  # the app.extensions key of the machine's shared pages
_EVERY_STEP = "registry.page_cache.every_step"  # the app.extensions key of the paths of every_step pages


def placeholder() -> str:
    return PLACEHOLDER


def cache_seconds(app: Flask) -> float:
    """How long a page (or a part of one: registry.library.fragments) is kept at most; 0: not at all."""
    return float(app.config.get("LIBRARY_CACHE_SECONDS", cache.DEFAULT_TTL) or 0)


def _max_bytes(app: Flask) -> int:
    megabytes = app.config.get("LIBRARY_CACHE_MEGABYTES") or cache.DEFAULT_MAX_BYTES // (1024 * 1024)
    return int(megabytes) << 20


def library_version(app: Flask) -> tuple:
    """The version of the public filings' pages now (registry.library.cache.public), as the page cache reads it (at
    most once a second, at once after a commit)."""
    return cache.public(_store(app).clock.now())


def _current(app: Flask, path: str) -> tuple:
    """The version a page at ``path`` is kept under: the whole one for the pages that count filings not yet public
    (:func:`serve`'s ``every_step``), the public part for the rest."""
    reading = _store(app).clock.now()
    return reading if path in app.extensions.get(_EVERY_STEP, ()) else cache.public(reading)


def _store(app: Flask) -> cache.PageCache:
    return cache.for_engine(app.extensions["registry"].engine, ttl=cache_seconds(app), max_bytes=_max_bytes(app))


def _unpacked(app: Flask) -> cache.PageCache:
    """The pages asked for most recently, uncompressed: a quarter of the cache's size beside it."""
    engine = app.extensions["registry"].engine
    return cache.unpacked_for(engine, ttl=cache_seconds(app), max_bytes=_max_bytes(app) // _UNPACKED_SHARE)


def _shared(app: Flask) -> shared_pages.SharedPages | None:
    """The pages shared by this machine's worker processes (registry.library.shared_pages), unless turned off."""
    if not app.config.get("LIBRARY_CACHE_SHARED", True):
        return None
    shared = app.extensions.get(_SHARED)
    if shared is None:
        shared = app.extensions[_SHARED] = shared_pages.SharedPages(
            Path(app.instance_path) / shared_pages.FILE_NAME, max_bytes=_max_bytes(app), prefix=_fingerprint()
        )
    return shared


@functools.cache
def _fingerprint() -> str:
    return shared_pages.fingerprint(Path(__file__).resolve().parent.parent)  # the registry package


def _lookup(app: Flask, key: tuple, current: tuple, now: datetime) -> tuple[str, list, bytes] | None:
    """The answer kept under ``key`` for ``current`` and ``now``: from this process's memory — the pages asked for
    most recently as they are, the others compressed — else from the pages the machine's processes share (and then
    kept in memory too)."""
    unpacked = _unpacked(app)
    answer = unpacked.get(key, current, now)
    if answer is not None:
        return answer
    store = _store(app)
    kept = store.find(key, current, now)
    if kept is None:
        shared = _shared(app)
        found = shared.get(key, current, now=now, ttl=store.ttl) if shared is not None else None
        if found is None:
            return None
        status, headers, packed = found.head
        kept = ((status, [tuple(header) for header in headers], found.data, packed), found.age, found.until)
        store.put(key, current, kept[0], len(found.data), found.until, age=found.age)
    (status, headers, data, packed), age, until = kept
    answer = (status, headers, zlib.decompress(data) if packed else data)
    unpacked.put(key, current, answer, len(answer[2]), until, age=age)  # no longer than the compressed copy
    return answer


def _keep(app: Flask, key: tuple, current: tuple, answer: tuple[str, list, bytes], until: datetime | None) -> None:
    """Keep an answer made at version ``current``: as it is among the pages asked for most recently, compressed
    from _PACK_FROM bytes on in this process's memory, and shared."""
    status, headers, body = answer
    packed = len(body) >= _PACK_FROM
    data = zlib.compress(body, _PACK_LEVEL) if packed else body
    _store(app).put(key, current, (status, headers, data, packed), len(data), until)
    _unpacked(app).put(key, current, answer, len(body), until)
    shared = _shared(app)
    if shared is not None:
        shared.put(key, current, [status, headers, packed], data, until=until)


def _key(environ: dict, cookies) -> tuple:
    """What a cached answer depends on: the address (scheme and host too: links and HSTS follow them), and the
    language and display mode the reader's cookies choose (``?lang=`` is in the query)."""
    return (
        environ.get("wsgi.url_scheme"),
        environ.get("HTTP_HOST"),
        environ.get("SCRIPT_NAME", ""),
        environ.get("PATH_INFO", ""),
        environ.get("QUERY_STRING", ""),
        cookies.get(_LANGUAGE_COOKIE),
        cookies.get(_DISPLAY_COOKIE),
    )


def _cacheable() -> bool:
    actor = g.get("actor")
    return (
        cache_seconds(current_app) > 0
        and request.method == "GET"
        and (actor is None or not actor.is_authenticated)
        and "Authorization" not in request.headers
        and not session.get("_flashes")
    )


def holds_until(moment: datetime | None) -> None:
    """Called by a view while it builds a page: what the page shows may change at ``moment`` by the time that
    passes alone (None: it does not), so it is not served from the cache from then on."""
    if moment is not None:
        earlier = request.environ.get(_UNTIL)
        request.environ[_UNTIL] = moment if earlier is None else min(earlier, moment)


def serve(
    build: Callable[[Callable[[], str]], object], *, now: datetime | None = None, every_step: bool = False
) -> Response:
    """The answer ``build(csrf_token)`` makes, from the cache when it holds one made at the library's current
    version within the ttl (and before the moment it holds until: :func:`holds_until`, compared with ``now``, the
    view's time). ``build`` renders with the ``csrf_token`` it is given (pass it to render_template as
    csrf_token). ``every_step``: the page counts filings that are not public yet, and is made again after any
    step of any filing (registry.library.cache); other pages only when a public filing changes."""
    if not _cacheable():
        return make_response(build(generate_csrf))
    if every_step:
        current_app.extensions.setdefault(_EVERY_STEP, set()).add(request.environ.get("PATH_INFO", ""))
    current = _current(current_app, request.environ.get("PATH_INFO", ""))
    key = _key(request.environ, request.cookies)
    hit = _lookup(current_app, key, current, now or utcnow())
    if hit is not None:
        status, headers, body = hit
        return Response(_with_token(body, generate_csrf()), status=status, headers=headers)
    response = make_response(build(placeholder))
    if response.is_streamed or response.direct_passthrough:
        return response
    body = response.get_data()
    if response.status_code == 200:
        # Offered to the front door, which keeps it with the headers of the finished answer.
        request.environ[_OFFER] = (key, current, body, request.environ.get(_UNTIL))
    if _PLACEHOLDER_BYTES in body:
        response.set_data(_with_token(body, generate_csrf()))
    return response


def _with_token(body: bytes, token: str) -> bytes:
    return body.replace(_PLACEHOLDER_BYTES, token.encode("ascii")) if _PLACEHOLDER_BYTES in body else body


class FrontCache:
    """WSGI middleware: answers an anonymous reader's GET from the page cache before the Flask app sees it, and
    keeps the answers the views offer (see the module's docstring)."""

    def __init__(self, wsgi_app, app: Flask) -> None:
        self.wsgi_app, self.app = wsgi_app, app
        self.sessions = _Sessions(app)

    def __call__(self, environ, start_response):
        if (
            environ.get("REQUEST_METHOD") == "GET"
            and "HTTP_AUTHORIZATION" not in environ
            and cache_seconds(self.app) > 0
        ):
            answer = self._cached(environ)
            if answer is not None:
                status, headers, body = answer
                start_response(status, [*headers, ("Content-Length", str(len(body)))])
                return [body]
            return self._offered(environ, start_response)
        return self.wsgi_app(environ, start_response)

    def _cached(self, environ) -> tuple[str, list, bytes] | None:
        cookies = parse_cookie(environ)
        reader = self.sessions.anonymous_reader(cookies)
        if reader is None:
            return None
        hit = _lookup(self.app, _key(environ, cookies), _current(self.app, environ.get("PATH_INFO", "")), utcnow())
        if hit is None:
            return None
        status, headers, body = hit
        if _PLACEHOLDER_BYTES in body:
            body = body.replace(_PLACEHOLDER_BYTES, reader.csrf_token().encode("ascii"))
        return status, headers, body

    def _offered(self, environ, start_response):
        """Run the app; keep the answer a view offered, with the headers it finished with."""
        kept: dict = {}

        def capture(status, headers, exc_info=None):
            kept["status"], kept["headers"] = status, headers
            return start_response(status, headers, exc_info)

        result = self.wsgi_app(environ, capture)
        offer = environ.pop(_OFFER, None)
        if offer is not None and kept.get("status", "").startswith("200"):
            key, current, body, until = offer
            headers = [(name, value) for name, value in kept["headers"] if name.lower() not in _PRIVATE_HEADERS]
            _keep(self.app, key, current, (kept["status"], headers, body), until)
        return result


class _Reader:
    """An anonymous reader's session, as far as a cached answer needs it: the raw CSRF token it holds."""

    __slots__ = ("_raw", "_serializer")

    def __init__(self, raw: str | None, serializer: URLSafeTimedSerializer) -> None:
        self._raw, self._serializer = raw, serializer

    def csrf_token(self) -> str:
        # What flask_wtf.csrf.generate_csrf gives for a session holding this raw token (and validate_csrf checks).
        return self._serializer.dumps(self._raw)


class _Sessions:
    """Session cookies already read, so that a reader's every request does not verify its signature again: cookie
    value → the anonymous reader it belongs to, or None (logged in, a message waiting, no CSRF token yet, or not a
    valid session). Bounded, and each reading is kept for a minute (a session expires by age)."""

    MAX_ITEMS = 10_000
    MAX_AGE = 60.0

    def __init__(self, app: Flask) -> None:
        self.app = app
        self._items: OrderedDict[str, tuple[float, _Reader | None]] = OrderedDict()
        self._lock = threading.Lock()

    def anonymous_reader(self, cookies) -> _Reader | None:
        app = self.app
        if cookies.get(app.config.get("REMEMBER_COOKIE_NAME", "remember_token")):
            return None
        value = cookies.get(app.config["SESSION_COOKIE_NAME"])
        if not value:
            return None  # a first visit: the app makes the session (and its token)
        with self._lock:
            item = self._items.get(value)
        if item is not None and time.monotonic() - item[0] < self.MAX_AGE:
            return item[1]
        reader = self._read(value)
        with self._lock:
            self._items[value] = (time.monotonic(), reader)
            self._items.move_to_end(value)
            while len(self._items) > self.MAX_ITEMS:
                self._items.popitem(last=False)
        return reader

    def _read(self, value: str) -> _Reader | None:
        app = self.app
        serializer = app.session_interface.get_signing_serializer(app)
        if serializer is None:
            return None
        try:
            data = serializer.loads(value, max_age=int(app.permanent_session_lifetime.total_seconds()))
        except BadSignature:
            return None
        if not isinstance(data, dict) or "_user_id" in data or data.get("_flashes"):
            return None
        field = app.config.get("WTF_CSRF_FIELD_NAME", "csrf_token")
        if not data.get(field):
            return None
        secret = app.config.get("WTF_CSRF_SECRET_KEY") or app.secret_key
        return _Reader(data[field], URLSafeTimedSerializer(secret, salt="wtf-csrf-token"))
