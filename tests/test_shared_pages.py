"""The pages a machine's worker processes share (registry.library.shared_pages): what one process keeps another
reads, never at another version, after its moment or its ttl, and the file stays within its size."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta

from registry.library import shared_pages
from registry.library.shared_pages import SharedPages

HEAD = ["200 OK", [["Content-Type", "text/html; charset=utf-8"]], False]


def _now() -> datetime:
    return datetime.now(UTC)


def test_a_page_one_process_keeps_another_reads_at_the_same_version_only(tmp_path):
    path = tmp_path / shared_pages.FILE_NAME
    writer, reader = SharedPages(path, max_bytes=1 << 20), SharedPages(path, max_bytes=1 << 20)
    writer.put(("http", "host", "", "/library", "", None, None), (7, 1), HEAD, b"<p>page</p>", until=None)
    kept = reader.get(("http", "host", "", "/library", "", None, None), (7, 1), now=_now(), ttl=300)
    assert kept is not None and kept.data == b"<p>page</p>" and kept.head == HEAD and kept.until is None
    assert reader.get(("http", "host", "", "/library", "", None, None), (8, 1), now=_now(), ttl=300) is None
    assert reader.get(("http", "host", "", "/library", "", "en", None), (7, 1), now=_now(), ttl=300) is None


def test_a_page_is_not_read_from_its_moment_on_nor_past_its_ttl(tmp_path):
    pages = SharedPages(tmp_path / shared_pages.FILE_NAME, max_bytes=1 << 20)
    moment = _now() + timedelta(hours=1)
    pages.put(("standings",), (1,), HEAD, b"lights", until=moment)
    assert pages.get(("standings",), (1,), now=moment - timedelta(seconds=1), ttl=300).until == moment
    assert pages.get(("standings",), (1,), now=moment, ttl=300) is None
    assert pages.get(("standings",), (1,), now=_now(), ttl=0) is None


def test_another_release_does_not_read_the_pages_of_the_last(tmp_path):
    path = tmp_path / shared_pages.FILE_NAME
    SharedPages(path, max_bytes=1 << 20, prefix="release-1").put(("/",), (1,), HEAD, b"old", until=None)
    assert SharedPages(path, max_bytes=1 << 20, prefix="release-2").get(("/",), (1,), now=_now(), ttl=300) is None


def test_the_fingerprint_follows_the_files(tmp_path):
    (tmp_path / "page.html").write_text("one")
    before = shared_pages.fingerprint(tmp_path)
    (tmp_path / "page.html").write_text("one and two")
    assert shared_pages.fingerprint(tmp_path) != before


def test_the_file_stays_within_its_size_the_newest_pages_kept(tmp_path):
    pages = SharedPages(tmp_path / shared_pages.FILE_NAME, max_bytes=256 * 1024)
    for number in range(1000):
        pages.put(("entry", number), (1,), HEAD, bytes(2000), until=None)
    connection = sqlite3.connect(tmp_path / shared_pages.FILE_NAME)
    count, size = connection.execute("SELECT count(*), sum(length(data)) FROM page").fetchone()
    assert size <= 256 * 1024 + 2000 * shared_pages._PRUNE_EVERY  # pruned at most _PRUNE_EVERY writes late
    assert count < 1000
    assert pages.get(("entry", 999), (1,), now=_now(), ttl=300) is not None
    assert pages.get(("entry", 0), (1,), now=_now(), ttl=300) is None


def test_a_folder_it_cannot_write_leaves_each_process_its_own_pages(tmp_path):
    pages = SharedPages(tmp_path / "missing" / shared_pages.FILE_NAME, max_bytes=1 << 20)
    pages.put(("/",), (1,), HEAD, b"page", until=None)  # no error: a cache may forget
    assert pages.get(("/",), (1,), now=_now(), ttl=300) is None
