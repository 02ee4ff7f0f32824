"""The public library's cached pages shared by the worker processes of one machine: an SQLite file in the instance
folder (``page-cache.sqlite3``). No Flask here.

Each gunicorn worker keeps the pages it made in memory (:class:`registry.library.cache.PageCache`); without this
file, every worker made every page once more for itself, and under load a page made in one worker was, a third of
the time, asked of the other before it had made it. A page is kept here with the library's version it was made at,
when it was made (wall-clock: the processes share no monotonic clock) and the moment it holds until; the reader
checks all three, as for a page kept in memory, so a page made before a decision is never served after it.

Written with the standard library's sqlite3 rather than a cache package: the one maintained candidate,
``diskcache``, pickles what it keeps and has had no release since 2023; what is kept here is bytes and text, read
by one indexed SELECT. WAL journal: readers never wait for the writer; a write that finds the file busy for more
than a moment is skipped (a cache may forget). The file is bounded (``max_bytes``): past it, the oldest pages go.
A page's key starts with a fingerprint of the registry's code, templates and translations, so a new release never
serves a page the old one made (the old pages age out). Set ``LIBRARY_CACHE_SHARED`` to false to keep pages in each
process only.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

log = logging.getLogger(__name__)

FILE_NAME = "page-cache.sqlite3"
_BUSY_MS = 50  # how long a write waits for another process's write before it is skipped
_PRUNE_EVERY = 64  # writes between two checks of the file's size
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS page (key TEXT PRIMARY KEY, version TEXT NOT NULL, made REAL NOT NULL, "
    "until REAL, head TEXT NOT NULL, data BLOB NOT NULL)",
    "CREATE INDEX IF NOT EXISTS page_made ON page (made)",
)


def fingerprint(*roots: Path) -> str:
    """A digest of the names, sizes and modification times of the files under ``roots`` (the code, templates and
    translations that make a page): it changes with every release."""
    digest = hashlib.sha256()
    for root in roots:
        for path in sorted(root.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                stat = path.stat()
                digest.update(f"{path.relative_to(root)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


class Kept(NamedTuple):
    head: list  # what the page's maker kept beside its bytes (JSON)
    data: bytes
    until: datetime | None  # the moment it holds until, if any
    age: float  # seconds since it was made


class SharedPages:
    """Pages by key in an SQLite file that every process of the machine opens (one connection per thread)."""

    def __init__(self, path: Path, *, max_bytes: int, prefix: str = "") -> None:
        self.path, self.max_bytes, self.prefix = path, max_bytes, prefix
        self._local = threading.local()
        self._writes = 0
        self._broken = False

    def _connection(self) -> sqlite3.Connection | None:
        connection = getattr(self._local, "connection", None)
        if connection is None and not self._broken:
            try:
                connection = sqlite3.connect(self.path, timeout=_BUSY_MS / 1000, isolation_level=None)
                connection.execute("PRAGMA journal_mode=WAL")
                connection.execute("PRAGMA synchronous=NORMAL")
                for statement in _SCHEMA:
                    connection.execute(statement)
            except sqlite3.Error as exc:  # a read-only or full disk: the pages stay in each process
                log.warning("shared page cache %s unavailable: %s", self.path, exc)
                self._broken = True
                return None
            self._local.connection = connection
        return connection

    def get(self, key: tuple, version: tuple, *, now: datetime, ttl: float) -> Kept | None:
        """What is kept under ``key`` at ``version``, made less than ``ttl`` seconds ago and held until a moment
        after ``now`` (if it was held until one); else None."""
        connection = self._connection()
        if connection is None:
            return None
        try:
            row = connection.execute(
                "SELECT version, made, until, head, data FROM page WHERE key = ?", (self._key(key),)
            ).fetchone()
        except sqlite3.Error:
            return None
        if row is None:
            return None
        kept_version, made, until, head, data = row
        age = time.time() - made
        if kept_version != _version(version) or age > ttl:
            return None
        if until is not None and now.timestamp() >= until:
            return None
        return Kept(json.loads(head), data, datetime.fromtimestamp(until, UTC) if until is not None else None, age)

    def put(self, key: tuple, version: tuple, head: list, data: bytes, *, until: datetime | None) -> None:
        """Keep ``data`` with ``head`` (JSON-able) under ``key``, made now at ``version``; skipped if the file is
        busy."""
        connection = self._connection()
        if connection is None:
            return
        try:
            connection.execute(
                "INSERT OR REPLACE INTO page (key, version, made, until, head, data) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    self._key(key),
                    _version(version),
                    time.time(),
                    until.astimezone(UTC).timestamp() if until is not None else None,
                    json.dumps(head),
                    data,
                ),
            )
            self._writes += 1
            if self._writes % _PRUNE_EVERY == 0:
                self._prune(connection)
        except sqlite3.Error:
            return  # busy, or the disk is full: the page stays in this process's memory

    def _prune(self, connection: sqlite3.Connection) -> None:
        """Past ``max_bytes`` in use, the oldest half of the pages go (their space is reused by the next ones)."""
        pages, free, size = (
            connection.execute(f"PRAGMA {name}").fetchone()[0] for name in ("page_count", "freelist_count", "page_size")
        )
        if (pages - free) * size > self.max_bytes:
            connection.execute(
                "DELETE FROM page WHERE made < (SELECT made FROM page ORDER BY made LIMIT 1 OFFSET "
                "(SELECT count(*) / 2 FROM page))"
            )

    def _key(self, key: tuple) -> str:
        return self.prefix + "\x1f" + json.dumps(key, ensure_ascii=False)


def _version(version: tuple) -> str:
    return json.dumps(version)
