"""Use cases for stored files: keep an upload and record it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from sqlmodel import Session

from registry.storage.files import ContentStore
from registry.storage.models import StoredFile


def store(
    *,
    session: Session,
    content: ContentStore,
    stream: BinaryIO,
    media_type: str,
    max_bytes: int,
    check: Callable[[Path], object] | None = None,
) -> StoredFile:
    """Write the bytes to the content store, then record them (the record joins the caller's transaction).

    The bytes land first: if the transaction later rolls back, an unreferenced file remains, which is harmless;
    a record never points at missing bytes. ``check`` vets the bytes before they are kept (see ContentStore).
    Raises PayloadTooLarge, or whatever ``check`` raises.
    """
    sha256, size, _path = content.put_stream(stream, max_bytes=max_bytes, check=check)
    record = session.get(StoredFile, sha256)
    if record is None:
        record = StoredFile(sha256=sha256, size=size, media_type=media_type)
        session.add(record)
        session.flush()
    return record
