"""The content store: files kept under their sha256, written atomically, never changed once written.

Two implementations share the interface: this local folder (the default, and the same layout on shared storage
at scale); another backend (object storage) only has to provide put_stream, open and exists.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, Protocol

from registry.errors import InsufficientStorage, PayloadTooLarge

CHUNK = 1024 * 1024
# A write that fails for want of room: the disk (or the tmpfs) is full, a quota is spent, a file size limit is hit.
NO_ROOM = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


class ContentStore(Protocol):
    def put_stream(
        self, stream: BinaryIO, *, max_bytes: int, check: Callable[[Path], object] | None = None
    ) -> tuple[str, int, Path]: ...

    def open(self, sha256: str) -> BinaryIO: ...

    def exists(self, sha256: str) -> bool: ...


class LocalContentStore:
    """Files at ``root/ab/cd/abcd…`` (sha256 hex). A write goes to a temporary file first, then is renamed."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)

    def path(self, sha256: str) -> Path:
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise ValueError("not a sha256 hex digest")
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def open(self, sha256: str) -> BinaryIO:
        return self.path(sha256).open("rb")

    def put_stream(
        self, stream: BinaryIO, *, max_bytes: int, check: Callable[[Path], object] | None = None
    ) -> tuple[str, int, Path]:
        """Store what ``stream`` holds; returns (sha256, size, path).

        ``check`` is called on the complete temporary file before it is kept; whatever it raises propagates and
        nothing is kept. Raises PayloadTooLarge past ``max_bytes``, InsufficientStorage when the disk is full
        (nothing is kept in either case). The same bytes twice are kept once. Temporary files that a killed
        process left in ``incoming/`` are removed first (see :meth:`sweep_incoming`).
        """
        self.sweep_incoming()
        try:
            return self._put(stream, max_bytes=max_bytes, check=check)
        except OSError as exc:
            if exc.errno in NO_ROOM:
                raise InsufficientStorage(
                    "There is no room left to store the file; nothing was kept. Try again later.",
                    code="insufficient_storage",
                    pointer="/file",
                ) from exc
            raise

    def _put(
        self, stream: BinaryIO, *, max_bytes: int, check: Callable[[Path], object] | None
    ) -> tuple[str, int, Path]:
        incoming = self.root / "incoming"
        incoming.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        size = 0
        with self._incoming_lock(fcntl.LOCK_SH):  # no sweep runs between the file's creation and its lock
            fd, tmp_name = tempfile.mkstemp(dir=incoming, prefix="upload-")
            fcntl.flock(fd, fcntl.LOCK_EX)  # held until the file is kept or removed: a live write is never swept
        try:
            with os.fdopen(fd, "wb") as out:
                while chunk := stream.read(CHUNK):
                    size += len(chunk)
                    if size > max_bytes:
                        raise PayloadTooLarge(
                            f"The file is larger than the limit of {max_bytes} bytes.", code="file_too_large"
                        )
                    digest.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
                if check is not None:
                    check(Path(tmp_name))
                sha256 = digest.hexdigest()
                final = self.path(sha256)
                if final.exists():
                    os.unlink(tmp_name)
                else:
                    final.parent.mkdir(parents=True, exist_ok=True)
                    os.chmod(tmp_name, 0o444)
                    os.replace(tmp_name, final)
                    _fsync_directory(final.parent)  # the rename itself survives a crash of the machine
            return sha256, size, final
        except BaseException:
            if os.path.exists(tmp_name):
                os.unlink(tmp_name)
            raise

    def _incoming_lock(self, operation: int):
        """A lock on the ``incoming/`` folder itself: writers share it while they create and lock a temporary
        file; a sweep holds it alone."""
        return _FolderLock(self.root / "incoming", operation)

    def sweep_incoming(self) -> list[str]:
        """Remove the temporary files of writes that ended without finishing (the process was killed or the
        machine stopped); returns their names. A file being written is locked by its writer, so it is left alone,
        and the lock dies with the writer's process."""
        incoming = self.root / "incoming"
        if not incoming.is_dir():
            return []
        removed = []
        with self._incoming_lock(fcntl.LOCK_EX):
            for leftover in incoming.glob("upload-*"):
                try:
                    fd = os.open(leftover, os.O_RDONLY)
                except FileNotFoundError:  # kept or removed by its writer meanwhile
                    continue
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # a live write
                else:
                    leftover.unlink(missing_ok=True)
                    removed.append(leftover.name)
                finally:
                    os.close(fd)
        return removed


class _FolderLock:
    def __init__(self, path: Path, operation: int) -> None:
        self.path, self.operation = path, operation

    def __enter__(self) -> None:
        self.fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(self.fd, self.operation)
        except BaseException:
            os.close(self.fd)
            raise

    def __exit__(self, *_exc) -> None:
        os.close(self.fd)  # closing releases the lock


def _fsync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
