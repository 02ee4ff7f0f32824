"""Making a backup: the database dumped in one snapshot, then the files it names, the keys and the log's head."""

from __future__ import annotations

import os
import tarfile
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata as package_metadata
from pathlib import Path

import sqlalchemy as sa
from alembic.runtime.migration import MigrationContext

from registry.backup import archive, rows
from registry.backup.archive import BackupError
from registry.backup.instance import Instance
from registry.decision_log import keys as log_keys
from registry.ledger import checkpoint as checkpoints
from registry.ledger import merkle

FETCH = 1000


@dataclass
class Summary:
    """What a backup holds (for the command's report)."""

    path: Path
    revision: str
    tables: int = 0
    rows: int = 0
    files: int = 0
    file_bytes: int = 0
    log_size: int = 0
    keys: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def app_version() -> str:
    try:
        return package_metadata.version("algorithm-registry")
    except package_metadata.PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "unknown"


def create_backup(instance: Instance, path: Path) -> Summary:
    """Write a backup of ``instance`` to ``path`` (mode 0600, never over an existing file). The file appears under
    its name only when complete. Raises BackupError (no database schema, a stored file missing or damaged, an
    unreadable key); a partial file is removed."""
    path = Path(path)
    if path.exists():
        raise BackupError(f"{path} exists; a backup never overwrites a file.")
    if not path.parent.is_dir():
        raise BackupError(f"The folder {path.parent} does not exist.")
    if not instance.database_exists():
        raise BackupError(f"There is no database at {instance.database_url}: check REGISTRY_INSTANCE and DATABASE_URL.")
    partial = path.with_name(f".{path.name}.partial-{os.getpid()}")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.fchmod(fd, 0o600)  # whatever the umask: the backup holds secrets
    try:
        with os.fdopen(fd, "wb") as raw:
            with tarfile.open(fileobj=raw, mode=archive.write_mode(path)) as tar:
                summary = _write(instance, archive.Writer(tar), path)
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(partial, path)
    except sa.exc.OperationalError as exc:
        partial.unlink(missing_ok=True)
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise BackupError(f"Cannot read the database: {reason}") from None
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return summary


def _write(instance: Instance, writer: archive.Writer, path: Path) -> Summary:
    engine = rows.transactional_engine(instance.database_url)
    try:
        with tempfile.TemporaryDirectory(prefix="registry-backup-") as scratch:  # mode 0700: rows hold secrets
            dumped = _dump(engine, writer, Path(scratch))
    finally:
        engine.dispose()
    summary = Summary(path=path, revision=dumped.revision, tables=len(dumped.tables))
    summary.rows = sum(t["rows"] for t in dumped.tables)
    summary.log_size = dumped.log_size
    # The content store is write-once: every file the snapshot names was complete before its row committed.
    missing = []
    for sha256 in dumped.stored_files:
        source = instance.files / sha256[:2] / sha256[2:4] / sha256
        if not source.is_file():
            missing.append(sha256)
            continue
        if writer.add_file(archive.file_member(sha256), source) != sha256:
            raise BackupError(f"The stored file {source} does not hash to its name: the content store is damaged.")
        summary.files += 1
        summary.file_bytes += writer.members[archive.file_member(sha256)]["size"]
    if missing:
        raise BackupError(
            f"{len(missing)} file(s) that the database records are not in the content store {instance.files}: "
            f"{', '.join(missing[:5])}. No backup was written."
        )
    public_key = None
    if instance.log_key_file.exists():
        try:
            signer = log_keys.read_key(instance.log_key_file)
        except log_keys.LogKeyError as exc:
            raise BackupError(exc.message) from None
        writer.add_file(archive.LOG_KEY_MEMBER, instance.log_key_file)
        public_key = signer.verifier_key
        writer.add_bytes(archive.PUBLIC_KEY_MEMBER, (public_key + "\n").encode("ascii"))
        summary.keys.append(str(instance.log_key_file))
    else:
        summary.warnings.append(
            f"there is no decision-log signing key at {instance.log_key_file}: the backup holds none (keep yours)"
        )
    note = dumped.checkpoint
    if note is None and public_key is not None:  # an empty log: its checkpoint of size 0, as the API serves it
        empty = checkpoints.Checkpoint(signer.origin, 0, merkle.root([]))
        note = checkpoints.sign_checkpoint(empty, signer.signer).decode("utf-8")
    if note is not None:
        writer.add_bytes(archive.CHECKPOINT_MEMBER, note.encode("utf-8"))
    if instance.secret_key_file.exists():
        writer.add_file(archive.SECRET_KEY_MEMBER, instance.secret_key_file)
        summary.keys.append(str(instance.secret_key_file))
    manifest = {
        "format": archive.FORMAT,
        "format_version": archive.FORMAT_VERSION,
        "app_version": app_version(),
        "alembic_revision": dumped.revision,
        "created_at": datetime.now(UTC).isoformat(),
        "database": {"dialect": engine.dialect.name, "tables": dumped.tables},
        "files": {"scope": "referenced by stored_file", "count": summary.files, "bytes": summary.file_bytes},
        "keys": {
            "log_signing_key": archive.LOG_KEY_MEMBER if writer.members.get(archive.LOG_KEY_MEMBER) else None,
            "secret_key": archive.SECRET_KEY_MEMBER if writer.members.get(archive.SECRET_KEY_MEMBER) else None,
        },
        "log": {"tree_size": dumped.log_size, "public_key": public_key},
        "members": dict(sorted(writer.members.items())),
    }
    writer.add_bytes(archive.MANIFEST, rows.json_bytes(manifest))
    return summary


@dataclass
class _Dumped:
    revision: str
    tables: list[dict]
    stored_files: list[str]
    checkpoint: str | None
    log_size: int


def _snapshot(engine: sa.Engine) -> sa.Connection:
    """One consistent, read-only view of the whole database."""
    connection = engine.connect()
    if engine.dialect.name == "postgresql":
        return connection.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
    return connection  # SQLite: rows.transactional_engine begins a real (deferred) read transaction


def _dump(engine: sa.Engine, writer: archive.Writer, scratch: Path) -> _Dumped:
    with _snapshot(engine) as connection, connection.begin():
        revision = MigrationContext.configure(connection).get_current_revision()
        if revision is None:
            raise BackupError("The database has no schema (no Alembic revision): there is nothing to back up.")
        dumped = _Dumped(revision=revision, tables=[], stored_files=[], checkpoint=None, log_size=0)
        for number, (table, columns) in enumerate(rows.tables_in(connection), start=1):
            member = f"db/{number:03d}-{table.name}.jsonl"
            temporary = scratch / f"{number:03d}.jsonl"
            count = _dump_table(connection, table, columns, temporary, dumped)
            writer.add_file(member, temporary)
            temporary.unlink()
            dumped.tables.append({"name": table.name, "member": member, "rows": count, "columns": columns})
    return dumped


def _dump_table(connection, table: sa.Table, columns: list[str], out: Path, dumped: _Dumped) -> int:
    json_columns = [rows.is_json_column(table.columns[c].type) for c in columns]
    selected = [table.columns[c] for c in columns]
    null_flags = [table.columns[c].is_(None) for c, is_json in zip(columns, json_columns, strict=True) if is_json]
    query = sa.select(*selected, *null_flags).order_by(*rows.primary_key_order(table, columns))
    options = {"yield_per": FETCH} if connection.dialect.name == "postgresql" else {}
    count = 0
    with out.open("wb") as handle:
        handle.write(rows.json_bytes({"table": table.name, "columns": columns}))
        for row in connection.execution_options(**options).execute(query):
            flags = iter(row[len(columns) :])
            values = []
            for value, is_json in zip(row[: len(columns)], json_columns, strict=True):
                if is_json:
                    sql_null = next(flags)
                    values.append(None if sql_null else {"$json": value})
                else:
                    values.append(rows.encode(value))
            handle.write(rows.dump_line(values))
            count += 1
            _note(table.name, dict(zip(columns, row, strict=False)), dumped)
    return count


def _note(table: str, row: dict, dumped: _Dumped) -> None:
    """What the rest of the backup needs from the rows: the files to copy and the log's newest checkpoint."""
    if table == "stored_file":
        dumped.stored_files.append(row["sha256"])
    elif table == "log_checkpoint" and row["tree_size"] >= dumped.log_size:  # primary-key order: the last is newest
        dumped.log_size, dumped.checkpoint = row["tree_size"], row["note"]
