"""The content store: files kept under their sha256, written atomically, never changed once written.

Two implementations share the interface: this local folder (the default, and the same layout on shared storage
at scale); another backend (object storage) only has to provide put_stream, open and exists.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, Protocol

from registry.errors import PayloadTooLarge

CHUNK = 1024 * 1024


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
        nothing is kept. Raises PayloadTooLarge past ``max_bytes`` (nothing is kept). The same bytes twice are
        kept once.
        """
        incoming = self.root / "incoming"
        incoming.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        size = 0
        fd, tmp_name = tempfile.mkstemp(dir=incoming, prefix="upload-")
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
            return sha256, size, final
        except BaseException:
            if os.path.exists(tmp_name):
                os.unlink(tmp_name)
            raise
