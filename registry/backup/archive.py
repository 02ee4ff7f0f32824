"""The backup file: a tar of named members and the manifest that lists each one's sha256 and size.

Layout (every member a regular file; nothing is ever extracted by its own name, only read):

- ``db/NNN-<table>.jsonl``: one table, parents before children; a header line ``{"table", "columns"}``, then one
  JSON array per row in primary-key order (see :mod:`registry.backup.rows` for the types);
- ``files/ab/cd/<sha256>``: every file that the ``stored_file`` table records (leftovers of failed uploads, which
  no row names, are not copied);
- ``keys/log-signing-key`` (the decision log's Ed25519 signer key) and ``keys/secret_key`` (the session key kept
  in the instance folder), when the instance has them;
- ``log/public-key`` and ``log/checkpoint``: the log's verifier key and newest signed checkpoint, so the backup
  alone can be checked (the entries, nodes and every checkpoint are in the database tables);
- ``manifest.json``, written last.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

FORMAT = "algorithm-registry-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
LOG_KEY_MEMBER = "keys/log-signing-key"
SECRET_KEY_MEMBER = "keys/secret_key"  # noqa: S105 - a member name, not a secret
PUBLIC_KEY_MEMBER = "log/public-key"
CHECKPOINT_MEMBER = "log/checkpoint"
CHUNK = 1024 * 1024
MAX_MANIFEST_BYTES = 64 * 1024 * 1024
MAX_SMALL_MEMBER_BYTES = 64 * 1024  # a key, the public key, a checkpoint

_MEMBER = re.compile(
    r"(db/[0-9]{3}-[a-z0-9_]{1,63}\.jsonl|files/[0-9a-f]{2}/[0-9a-f]{2}/[0-9a-f]{64}"
    r"|keys/(log-signing-key|secret_key)|log/(public-key|checkpoint))"
)
_WRITE_MODES = {".gz": "w:gz", ".tgz": "w:gz", ".xz": "w:xz", ".bz2": "w:bz2"}


class BackupError(Exception):
    """The backup cannot be made, read or restored; ``message`` says why and what to do. Nothing was written
    unless the message says so."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def file_member(sha256: str) -> str:
    return f"files/{sha256[:2]}/{sha256[2:4]}/{sha256}"


def write_mode(path: Path) -> str:
    """Compression by the name: .tar.gz/.tgz, .tar.xz, .tar.bz2; anything else is a plain tar."""
    return _WRITE_MODES.get(path.suffix.lower(), "w")


class _Hashing(io.RawIOBase):
    """Reads through to ``inner`` and hashes what passes."""

    def __init__(self, inner: BinaryIO) -> None:
        self.inner, self.digest, self.size = inner, hashlib.sha256(), 0

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        data = self.inner.read(n)
        self.digest.update(data)
        self.size += len(data)
        return data


class Writer:
    """Adds members to a new tar and remembers each one's sha256 and size for the manifest."""

    def __init__(self, tar: tarfile.TarFile) -> None:
        self.tar = tar
        self.members: dict[str, dict] = {}

    def add_stream(self, name: str, stream: BinaryIO, size: int) -> str:
        """Add ``size`` bytes of ``stream`` as ``name``; returns their sha256 (hex)."""
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = size, 0o600, 0
        hashing = _Hashing(stream)
        self.tar.addfile(info, hashing)
        if hashing.size != size:
            raise BackupError(f"{name} changed size while it was being copied")
        sha256 = hashing.digest.hexdigest()
        self.members[name] = {"sha256": sha256, "size": size}
        return sha256

    def add_bytes(self, name: str, data: bytes) -> str:
        return self.add_stream(name, io.BytesIO(data), len(data))

    def add_file(self, name: str, path: Path) -> str:
        with path.open("rb") as handle:
            return self.add_stream(name, handle, os.fstat(handle.fileno()).st_size)


@dataclass
class Verified:
    """A backup whose every member matched its manifest when it was checked."""

    path: Path
    manifest: dict

    def open(self) -> tarfile.TarFile:
        return _open_tar(self.path)

    @property
    def tables(self) -> list[dict]:
        return self.manifest["database"]["tables"]

    def has(self, member: str) -> bool:
        return member in self.manifest["members"]


def _open_tar(path: Path) -> tarfile.TarFile:
    try:
        return tarfile.open(path, "r:*")
    except FileNotFoundError:
        raise BackupError(f"There is no backup at {path}.") from None
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise BackupError(f"{path} is not a readable backup: {exc}") from None


def read_member(tar: tarfile.TarFile, name: str) -> bytes:
    handle = tar.extractfile(name)
    if handle is None:
        raise BackupError(f"The backup's member {name} is not a file.")
    return handle.read()


def _members(tar: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
    try:
        yield from tar
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise BackupError(f"The backup is damaged: {exc}") from None


def verify(path: Path) -> Verified:
    """Read the whole backup and check it against its manifest: every member listed, none missing, each with the
    listed sha256 and size, row counts as listed, stored files named by their own sha256. Raises BackupError naming
    the first problems; nothing is written."""
    problems: list[str] = []
    found: dict[str, dict] = {}
    manifest_bytes = None
    with _open_tar(path) as tar:
        for info in _members(tar):
            name = info.name
            if name in found or (name == MANIFEST and manifest_bytes is not None):
                problems.append(f"the member {name} appears twice")
                continue
            if not info.isreg():
                problems.append(f"the member {name} is not a regular file")
                continue
            if name == MANIFEST:
                if info.size > MAX_MANIFEST_BYTES:
                    raise BackupError("The backup's manifest is too large to be one.")
                manifest_bytes = read_member(tar, name)
                continue
            if not _MEMBER.fullmatch(name):
                problems.append(f"the member {name!r} is not part of a registry backup")
                continue
            if name.startswith(("keys/", "log/")) and info.size > MAX_SMALL_MEMBER_BYTES:
                problems.append(f"the member {name} is too large to be a key or a checkpoint")
                continue
            digest, lines = hashlib.sha256(), 0
            try:
                handle = tar.extractfile(info)
                while chunk := handle.read(CHUNK):
                    digest.update(chunk)
                    lines += chunk.count(b"\n")
            except (tarfile.TarError, OSError, EOFError) as exc:
                raise BackupError(f"The backup is damaged in {name}: {exc}") from None
            found[name] = {"sha256": digest.hexdigest(), "size": info.size, "lines": lines}
    if manifest_bytes is None:
        raise BackupError(f"{path} has no {MANIFEST}: it is not a registry backup, or it was cut short.")
    manifest = _parse_manifest(manifest_bytes)
    listed = manifest["members"]
    for name in sorted(set(listed) - set(found)):
        problems.append(f"the member {name} is missing")
    for name in sorted(set(found) - set(listed)):
        problems.append(f"the member {name} is not in the manifest")
    for name in sorted(set(found) & set(listed)):
        want, got = listed[name], found[name]
        if (want.get("sha256"), want.get("size")) != (got["sha256"], got["size"]):
            problems.append(f"the member {name} does not match the manifest's sha256 (it was changed or damaged)")
        elif name.startswith("files/") and got["sha256"] != name.rsplit("/", 1)[1]:
            problems.append(f"the stored file {name} does not hash to its name")
    for table in manifest["database"]["tables"]:
        got = found.get(table["member"])
        if got is not None and got["lines"] != table["rows"] + 1:
            problems.append(f"the table {table['name']} has {got['lines'] - 1} rows, the manifest says {table['rows']}")
    if problems:
        shown = "; ".join(problems[:10]) + (f"; and {len(problems) - 10} more" if len(problems) > 10 else "")
        raise BackupError(f"The backup {path} failed its check, so nothing was restored: {shown}.")
    return Verified(path=path, manifest=manifest)


def _parse_manifest(data: bytes) -> dict:
    try:
        manifest = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BackupError(f"The backup's manifest is not JSON: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupError("The manifest does not describe a registry backup.")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise BackupError(
            f"The backup's format version is {manifest.get('format_version')!r}; this registry reads version "
            f"{FORMAT_VERSION}. Restore it with the registry version that made it ({manifest.get('app_version')})."
        )
    if not _well_formed(manifest):
        raise BackupError("The backup's manifest is incomplete (its members and database tables).")
    return manifest


def _well_formed(manifest: dict) -> bool:
    members, database = manifest.get("members"), manifest.get("database")
    if not isinstance(members, dict) or not isinstance(database, dict) or not isinstance(database.get("tables"), list):
        return False
    return all(
        isinstance(table, dict)
        and isinstance(table.get("name"), str)
        and isinstance(table.get("rows"), int)
        and isinstance(table.get("columns"), list)
        and table.get("member") in members
        for table in database["tables"]
    )
