"""The content store keeps files under their sha256, atomically, once, and read-only."""

import hashlib
import io
import stat

import pytest

from registry.errors import PayloadTooLarge
from registry.storage.files import LocalContentStore


def test_a_file_is_stored_under_its_sha256_and_reads_back(tmp_path):
    store = LocalContentStore(tmp_path)
    data = b"model bytes" * 1000
    sha256, size, path = store.put_stream(io.BytesIO(data), max_bytes=10**6)
    assert sha256 == hashlib.sha256(data).hexdigest() and size == len(data)
    assert path == tmp_path / sha256[:2] / sha256[2:4] / sha256
    with store.open(sha256) as handle:
        assert handle.read() == data
    assert not stat.S_IMODE(path.stat().st_mode) & 0o222  # read-only: immutable once stored


def test_the_same_bytes_are_kept_once(tmp_path):
    store = LocalContentStore(tmp_path)
    first = store.put_stream(io.BytesIO(b"same"), max_bytes=100)
    second = store.put_stream(io.BytesIO(b"same"), max_bytes=100)
    assert first == second
    assert len([p for p in tmp_path.rglob("*") if p.is_file()]) == 1


def test_too_large_or_refused_files_leave_nothing_behind(tmp_path):
    store = LocalContentStore(tmp_path)
    with pytest.raises(PayloadTooLarge):
        store.put_stream(io.BytesIO(b"x" * 101), max_bytes=100)

    def refuse(_path):
        raise ValueError("not wanted")

    with pytest.raises(ValueError):
        store.put_stream(io.BytesIO(b"y"), max_bytes=100, check=refuse)
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


@pytest.mark.parametrize("name", ["../../etc/passwd", "abc", "G" * 64])
def test_only_sha256_names_map_to_paths(tmp_path, name):
    with pytest.raises(ValueError):
        LocalContentStore(tmp_path).path(name)
