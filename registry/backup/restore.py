"""Checking a backup, and restoring one into an empty instance.

Order, so that a bad backup or a wrong target changes nothing: (1) every member is checked against the manifest;
(2) the target is checked: its database empty (no tables, or only what the migrations themselves write) and at
no other schema revision, no different log key where the backup's would go; (3) the stored files are copied (write-once and
named by their sha256, so a copy is never wrong, only perhaps unused); (4) keys that are not there yet are written
(mode 0600; a different log key is refused, a different session key kept); (5) in ONE database transaction the schema is migrated to the backup's revision and every row is
inserted (the append-only triggers allow INSERT), PostgreSQL's sequences are moved past the restored ids; (6) the
decision log is verified as ``registry log verify`` does.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlmodel import Session

from registry import migrations
from registry.backup import archive, logcheck, rows
from registry.backup.archive import BackupError
from registry.backup.instance import Instance
from registry.decision_log import verify as verifier

BATCH = 500


@dataclass
class Checked:
    """A backup that passed its check: what it holds, and its decision log verified from the backup alone."""

    backup: archive.Verified
    log: verifier.Report

    @property
    def manifest(self) -> dict:
        return self.backup.manifest

    @property
    def ok(self) -> bool:
        return self.log.ok


def check_backup(path: Path) -> Checked:
    """Check ``path`` without restoring it: every member against the manifest (raises BackupError if any differs)
    and the decision log from the backup alone (the report says whether it verifies)."""
    backup = archive.verify(Path(path))
    return Checked(backup=backup, log=logcheck.check_log(backup))


@dataclass
class Restored:
    manifest: dict
    files_copied: int = 0
    files_present: int = 0
    keys_written: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    rows: int = 0
    pending_migrations: int = 0
    log: verifier.Report | None = None


def restore_backup(path: Path, instance: Instance) -> Restored:
    """Restore the backup at ``path`` into ``instance``, whose database must be empty. Raises BackupError, before
    anything is written, if the backup fails its check or the target is not empty or holds a different key."""
    backup = archive.verify(Path(path))
    manifest = backup.manifest
    revision = manifest["alembic_revision"]
    _require_known(revision)
    restored = Restored(manifest=manifest)
    keys_to_write = _keys_to_write(backup, instance, restored)
    engine = rows.transactional_engine(instance.database_url) if instance.database_exists() else None
    try:
        fresh = True if engine is None else _require_empty(engine, revision)
        instance.path.mkdir(parents=True, exist_ok=True)
        if engine is None:
            engine = rows.transactional_engine(instance.database_url)
        _copy_files(backup, instance, restored)
        _write_keys(backup, keys_to_write, restored)
        restored.rows = _restore_rows(engine, backup, migrate=fresh)
        restored.pending_migrations = len(migrations.pending(engine))
        restored.log = _verify_log(engine, instance, manifest)
    except sa.exc.OperationalError as exc:
        raise BackupError(f"Cannot use the database {_safe(instance.database_url)}: {_first_line(exc)}") from None
    finally:
        if engine is not None:
            engine.dispose()
    return restored


def _first_line(exc: BaseException) -> str:
    return str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]


def _safe(url: str) -> str:
    return sa.engine.make_url(url).render_as_string(hide_password=True)


# --- checks before anything is written -------------------------------------------------------------------------------


def _require_known(revision: str) -> None:
    try:
        found = ScriptDirectory.from_config(migrations.config()).get_revision(revision)
    except CommandError:
        found = None
    if found is None:
        raise BackupError(
            f"The backup's schema revision {revision} is not one of this registry's migrations: a newer version of "
            "the registry made it. Restore it with that version (or a later one)."
        )


def _require_empty(engine: sa.Engine, revision: str) -> bool:
    """True if the database has no tables at all (it will be migrated), False if it is at ``revision`` holding
    only what the migrations write. Raises BackupError otherwise."""
    with engine.connect() as connection, connection.begin():
        current = MigrationContext.configure(connection).get_current_revision()
        names = set(sa.inspect(connection).get_table_names())
        if current is None:
            if names:
                raise BackupError(
                    f"The database has tables ({', '.join(sorted(names)[:5])}…) but no schema revision: restore only "
                    "into an empty database."
                )
            return True
        seeds = _seed_rows(revision)
        for table, columns in rows.tables_in(connection):
            count = connection.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
            if count == 0:
                continue
            found = [dict(r._mapping) for r in connection.execute(sa.select(*(table.columns[c] for c in columns)))]
            if count > len(seeds.get(table.name, [])) or any(r not in seeds[table.name] for r in found):
                raise BackupError(
                    f"The database is not empty (the table {table.name} has {count} row(s)): a restore never mixes "
                    "a backup with other data. Restore into a new, empty database (and a new instance folder)."
                )
    if current != revision:
        raise BackupError(
            f"The database is at schema revision {current}, the backup at {revision}. Restore into a database "
            "with no tables at all (the restore creates them at the backup's revision)."
        )
    return False


def _seed_rows(revision: str) -> dict[str, list[dict]]:
    """The rows the migrations themselves write, up to ``revision`` (e.g. the decision log's head row)."""
    scratch = sa.create_engine("sqlite://", poolclass=sa.pool.StaticPool)
    try:
        migrations.upgrade(scratch, revision)
        with scratch.connect() as connection:
            return {
                table.name: [dict(r._mapping) for r in connection.execute(sa.select(*(table.columns[c] for c in cols)))]
                for table, cols in rows.tables_in(connection)
            }
    finally:
        scratch.dispose()


def _keys_to_write(backup: archive.Verified, instance: Instance, restored: Restored) -> list[tuple[str, Path]]:
    """The keys the instance lacks. A different decision-log key is refused (BackupError): the log's checkpoints
    are signed with the backup's. A different session key is kept (any start of the app makes one in the instance
    folder, `registry db upgrade` included; it only signs login cookies): the restored accounts log in again."""
    out = []
    for member, destination in (
        (archive.LOG_KEY_MEMBER, instance.log_key_file),
        (archive.SECRET_KEY_MEMBER, instance.secret_key_file),
    ):
        if not backup.has(member):
            continue
        if not destination.exists():
            out.append((member, destination))
            continue
        with backup.open() as tar:
            wanted = archive.read_member(tar, member).strip()
        if destination.read_bytes().strip() == wanted:
            continue
        if member == archive.SECRET_KEY_MEMBER:
            restored.notes.append(f"kept this instance's own session key {destination} (logins start afresh)")
            continue
        raise BackupError(
            f"{destination} holds a different decision-log signing key from the backup's, and a restore never "
            "overwrites a key. Move it away (and keep it) or restore into another instance; nothing was restored."
        )
    return out


# --- writing ---------------------------------------------------------------------------------------------------------


def _copy_files(backup: archive.Verified, instance: Instance, restored: Restored) -> None:
    """Every stored file into the content store, the way it writes them: a temporary file, checked, renamed."""
    incoming = instance.files / "incoming"
    with backup.open() as tar:
        for info in tar:
            if not info.name.startswith("files/"):
                continue
            sha256 = info.name.rsplit("/", 1)[1]
            final = instance.files / sha256[:2] / sha256[2:4] / sha256
            if final.is_file() and final.stat().st_size == info.size:
                restored.files_present += 1  # the same name is the same bytes
                continue
            incoming.mkdir(parents=True, exist_ok=True)
            fd, temporary = tempfile.mkstemp(dir=incoming, prefix="restore-")
            try:
                digest = hashlib.sha256()
                source = tar.extractfile(info)
                with os.fdopen(fd, "wb") as out:
                    while chunk := source.read(archive.CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
                    out.flush()
                    os.fsync(out.fileno())
                if digest.hexdigest() != sha256:
                    raise BackupError(f"The backup's {info.name} changed while it was being restored.")
                final.parent.mkdir(parents=True, exist_ok=True)
                os.chmod(temporary, 0o444)
                os.replace(temporary, final)
            except BaseException:
                Path(temporary).unlink(missing_ok=True)
                raise
            restored.files_copied += 1


def _write_keys(backup: archive.Verified, keys: list[tuple[str, Path]], restored: Restored) -> None:
    with backup.open() as tar:
        for member, destination in keys:
            data = archive.read_member(tar, member)
            destination.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(destination, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            restored.keys_written.append(str(destination))


def _restore_rows(engine: sa.Engine, backup: archive.Verified, *, migrate: bool) -> int:
    """Migrate (when the database has no tables) and insert every row, all in one transaction."""
    try:
        return _insert_everything(engine, backup, migrate=migrate)
    except sa.exc.SQLAlchemyError as exc:
        reason = _first_line(exc)
        raise BackupError(
            f"The backup's rows could not be inserted ({reason}), so the database transaction was rolled back and "
            "the database is as it was; the stored files and keys copied before stay (they are write-once)."
        ) from None


def _insert_everything(engine: sa.Engine, backup: archive.Verified, *, migrate: bool) -> int:
    revision = backup.manifest["alembic_revision"]
    total = 0
    with engine.connect() as connection, connection.begin(), backup.open() as tar:
        if migrate:
            command.upgrade(migrations.config(connection), revision)
        if connection.dialect.name == "sqlite":
            connection.exec_driver_sql("PRAGMA defer_foreign_keys=ON")  # checked at COMMIT, whatever the row order
        present = {table.name: (table, columns) for table, columns in rows.tables_in(connection)}
        for entry in backup.tables:
            if entry["name"] not in present or set(present[entry["name"]][1]) != set(entry["columns"]):
                raise BackupError(
                    f"The backup's table {entry['name']} does not match the schema at revision {revision}; "
                    "the backup is not from this registry."
                )
            # What the migrations wrote (e.g. the log's head row) makes way for the backup's rows.
            connection.execute(sa.delete(present[entry["name"]][0]))
            target = rows.insert_table(connection, entry["name"], entry["columns"])
            batch = []
            for values in logcheck.read_rows(tar, entry):
                batch.append(dict(zip(entry["columns"], values, strict=True)))
                if len(batch) == BATCH:
                    connection.execute(sa.insert(target), batch)
                    total, batch = total + len(batch), []
            if batch:
                connection.execute(sa.insert(target), batch)
                total += len(batch)
        if connection.dialect.name == "postgresql":
            _reset_sequences(connection, [present[e["name"]][0] for e in backup.tables])
    return total


def _reset_sequences(connection: sa.Connection, tables: list[sa.Table]) -> None:
    """Rows came with their ids: move each serial column's sequence past the largest, or the next insert fails."""
    quote = connection.dialect.identifier_preparer.quote
    for table in tables:
        keys = list(table.primary_key.columns)
        if len(keys) != 1 or not isinstance(keys[0].type, sa.Integer):
            continue
        column = keys[0].name
        connection.execute(
            sa.text(
                f"SELECT setval(pg_get_serial_sequence(:table, :column), "  # noqa: S608 - quoted model names
                f"COALESCE((SELECT MAX({quote(column)}) FROM {quote(table.name)}), 0) + 1, false)"
            ),
            {"table": quote(table.name), "column": column},
        )


def _verify_log(engine: sa.Engine, instance: Instance, manifest: dict) -> verifier.Report:
    """``registry log verify`` on the restored database, trusting the public key the backup names."""
    from registry.decision_log import keys
    from registry.decision_log import service as log

    report = verifier.Report()
    try:
        log_keys = keys.read_key(instance.log_key_file)
    except keys.LogKeyError as exc:
        report.bad(exc.message)
        return report
    with Session(engine) as session:
        report = verifier.verify(log.DatabaseSource(session, log_keys), pinned_key=manifest["log"].get("public_key"))
        problems = log.records_that_disagree(session)
    for problem in problems:
        report.bad(problem)
    if not problems:
        report.good("every entry matches the decision rows, and every decision taken is logged")
    return report
