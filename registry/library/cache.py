"""Short-lived caches of the public library's computed pages, keyed by a version of what the library shows. No
Flask here (``registry.library.page_cache`` is the web side).

A cached page is served only while :func:`version` is the one it was made at, and for at most ``ttl`` seconds.
Most pages show public filings only, and are kept under the public part of the version (:func:`public`), which
changes with every entry appended to the decision log (each decision, suspension, revocation, expiry and
supersession — every step into or between public states — commits with its entry, under the log head's lock),
every re-audit queued, started or finished (a public filing's audits and next re-audit date are on its entry),
every city added, and the library's index losing or gaining rows (``registry library reindex``). The steps of
filings not yet public (drafts, submissions, reviews, requests for changes) and their audits leave these pages
as they are. The standings count such filings too (requests for changes waiting, audits running): they are kept
under the whole version, which also changes with every lifecycle step and every audit job queued or finished.

The version is one small query, read at most once a second per process and at once after any commit in that
process (:class:`VersionClock`): a page made before a decision is never served after it by the process that took
the decision, nor by any other process more than a second after it. The ttl bounds what no version sees: a city
renamed. What changes by the time that passes alone (the standings' lights, as re-audit dates fall due; an entry's
re-audit becoming overdue) is kept with the moment it may change (``until``) and not served from that moment on.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Hashable
from datetime import datetime
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

DEFAULT_TTL = 300.0  # the LIBRARY_CACHE_SECONDS default (registry.config)
DEFAULT_MAX_BYTES = 256 * 1024 * 1024  # the LIBRARY_CACHE_MEGABYTES default

# One statement of index lookups, written out once: it runs on every request a cached page may answer, and building
# it with the expression language took longer than running it.
_VERSION_SQL = (
    "SELECT (SELECT tree_size FROM log_head WHERE id = 1), "
    "(SELECT max(id) FROM audit_job WHERE reason = 'reaudit'), "
    "(SELECT count(*) FROM audit_job WHERE state IN ('queued', 'running') AND reason = 'reaudit'), "
    "(SELECT count(*) FROM city), (SELECT count(*) FROM library_search), "
    "(SELECT max(id) FROM filing_transition), (SELECT max(id) FROM audit_job), "
    "(SELECT count(*) FROM audit_job WHERE state IN ('queued', 'running'))"
)
PUBLIC_PARTS = 5  # the first five: what the pages of public filings show depends on


def version(connection: Connection) -> tuple:
    """What the registry's public pages show now, in one query of index lookups. The public part: the decision
    log's size, the newest re-audit and how many are open (one queued raises the first, one finishing lowers the
    second: together they see every re-audit that finishes), the number of cities, and the number of rows in the
    library's index (rebuilt by ``registry library reindex``). Then the newest lifecycle step of any filing, the
    newest audit job and how many are open."""
    return tuple(connection.exec_driver_sql(_VERSION_SQL).one())


def public(reading: tuple) -> tuple:
    """The public part of a :func:`version` reading: what a page showing public filings only is kept under."""
    return reading[:PUBLIC_PARTS]


VERSION_MAX_AGE = 1.0


class _Commits:
    """Commits made by this process, on any engine (one listener for the process, however many apps it makes)."""

    count = 0

    @classmethod
    def seen(cls, _connection) -> None:
        cls.count += 1


event.listen(Engine, "commit", _Commits.seen)


class VersionClock:
    """:func:`version`, read again when the last reading is older than ``max_age`` seconds or this process has
    committed since, on any connection (so a decision taken in this process shows on its next request; one taken
    in another process, within ``max_age``). A reading costs a round trip to the database, which on a cached answer
    cost more than the rest of it."""

    def __init__(self, engine: Engine, *, max_age: float = VERSION_MAX_AGE) -> None:
        self._engine = weakref.ref(engine)  # the engine's cache holds this clock: no cycle keeping the engine alive
        self.max_age = max_age
        self._reading: tuple[tuple, float, int] | None = None  # (version, when read, commits seen then)
        self._lock = threading.Lock()

    def now(self) -> tuple:
        reading = self._reading
        if reading is not None and reading[2] == _Commits.count and time.monotonic() - reading[1] < self.max_age:
            return reading[0]
        with self._lock:
            commits = _Commits.count  # before the read: a commit during it makes the next call read again
            with self._engine().connect() as connection:
                value = version(connection)
            self._reading = (value, time.monotonic(), commits)
            return value


class PageCache:
    """A bounded, thread-safe map of key → (version, time, value, size, until), least recently used out first,
    with the :class:`VersionClock` of its database."""

    def __init__(self, engine: Engine, *, ttl: float = DEFAULT_TTL, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.ttl, self.max_bytes = ttl, max_bytes
        self.clock = VersionClock(engine)
        self._items: OrderedDict[Hashable, tuple[tuple, float, Any, int, datetime | None]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, key: Hashable, current: tuple, now: datetime) -> Any | None:
        """The value cached under ``key`` at version ``current``, younger than the ttl and, if it was kept until a
        moment, asked for before it (``now``); else None."""
        found = self.find(key, current, now)
        return None if found is None else found[0]

    def find(self, key: Hashable, current: tuple, now: datetime) -> tuple[Any, float, datetime | None] | None:
        """As :meth:`get`: (the value, its age in seconds, the moment it holds until), or None."""
        with self._lock:
            item = self._items.get(key)
            age = time.monotonic() - item[1] if item is not None else 0.0
            if item is None or item[0] != current or age > self.ttl or (item[4] is not None and now >= item[4]):
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return item[2], age, item[4]

    def put(
        self, key: Hashable, current: tuple, value: Any, size: int, until: datetime | None = None, *, age: float = 0.0
    ) -> None:
        """Keep ``value`` (``size`` bytes) under ``key``, made at version ``current`` ``age`` seconds ago; not to be
        served at or after ``until`` if given."""
        if size > self.max_bytes // 4:
            return
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= old[3]
            self._items[key] = (current, time.monotonic() - age, value, size, until)
            self._bytes += size
            while self._bytes > self.max_bytes and self._items:
                _key, (_v, _t, _value, freed, _until) = self._items.popitem(last=False)
                self._bytes -= freed


_CACHES: weakref.WeakKeyDictionary[Engine, PageCache] = weakref.WeakKeyDictionary()
_FRAGMENTS: weakref.WeakKeyDictionary[Engine, PageCache] = weakref.WeakKeyDictionary()
_RANKINGS: weakref.WeakKeyDictionary[Engine, PageCache] = weakref.WeakKeyDictionary()
_UNPACKED: weakref.WeakKeyDictionary[Engine, PageCache] = weakref.WeakKeyDictionary()
_CACHES_LOCK = threading.Lock()


def for_engine(engine: Engine, *, ttl: float = DEFAULT_TTL, max_bytes: int = DEFAULT_MAX_BYTES) -> PageCache:
    """The cache of the pages made from ``engine``'s database (one per database and process)."""
    return _cache(_CACHES, engine, ttl=ttl, max_bytes=max_bytes)


def fragments_for(engine: Engine, *, ttl: float = DEFAULT_TTL, max_bytes: int = DEFAULT_MAX_BYTES) -> PageCache:
    """The cache of the parts of pages made from ``engine``'s database, kept under the same version (one per
    database and process): a list's rows, each of which many pages of the list show."""
    return _cache(_FRAGMENTS, engine, ttl=ttl, max_bytes=max_bytes)


def unpacked_for(engine: Engine, *, ttl: float = DEFAULT_TTL, max_bytes: int = DEFAULT_MAX_BYTES) -> PageCache:
    """The pages of :func:`for_engine` asked for most recently, kept as they are sent rather than compressed (one
    per database and process): unpacking an entry page took two thirds of the time of answering from the cache."""
    return _cache(_UNPACKED, engine, ttl=ttl, max_bytes=max_bytes)


def rankings_for(engine: Engine, *, ttl: float = DEFAULT_TTL, max_bytes: int = DEFAULT_MAX_BYTES) -> PageCache:
    """The cache of the searches' rankings made from ``engine``'s database, kept under the same version (one per
    database and process): the filings a search matches, best first (registry.library.search.find)."""
    return _cache(_RANKINGS, engine, ttl=ttl, max_bytes=max_bytes)


def _cache(caches: weakref.WeakKeyDictionary, engine: Engine, *, ttl: float, max_bytes: int) -> PageCache:
    with _CACHES_LOCK:
        cache = caches.get(engine)
        if cache is None:
            cache = caches[engine] = PageCache(engine, ttl=ttl, max_bytes=max_bytes)
        return cache
