"""`registry backup` and `registry restore`: one file holding the database, the stored files, the keys and the
decision log, restored into an empty instance on the same or the other database, where the log still verifies.

The source is the demo province (accounts, filings in every state, decisions, log entries) plus one finished audit
with its report. Rows are compared table by table through a reader written here (not the backup's own).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import stat
import tarfile
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.script import ScriptDirectory
from click.testing import CliRunner
from sqlmodel import Session, SQLModel, select

import registry.models  # noqa: F401  (every table on the metadata)
from registry import create_app, demo, migrations
from registry.audit_jobs import service as audit_service
from registry.audit_jobs.models import AuditJob
from registry.audit_jobs.worker import run_pending
from registry.backup import rows
from registry.cli import main
from registry.db import make_engine, transaction
from registry.filings.models import Filing
from tests.conftest import POSTGRES_URL, _database_url, csrf_token, require_service

# --- helpers -------------------------------------------------------------------------------------------------------


def _env(instance: Path, database_url: str, key_file: Path | None = None) -> dict:
    return {
        "REGISTRY_INSTANCE": str(instance),
        "DATABASE_URL": database_url,
        "REGISTRY_LOG_SIGNING_KEY_FILE": str(key_file) if key_file else None,
        "REGISTRY_SECRET_KEY": None,
        "REGISTRY_DEMO": None,
    }


def _cli(env: dict, *args: str, stdin: str | None = None):
    return CliRunner().invoke(main, list(args), env=env, input=stdin)


def _every_row(database_url: str) -> dict[str, list[dict]]:
    """Every row of every table the models declare, in primary-key order, read through the models' types."""
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            inspector = sa.inspect(connection)
            present = set(inspector.get_table_names())
            out = {}
            for table in SQLModel.metadata.sorted_tables:
                if table.name not in present:
                    continue
                existing = {c["name"] for c in inspector.get_columns(table.name)}
                columns = [c for c in table.columns if c.name in existing]
                query = sa.select(*columns).order_by(*(table.primary_key.columns or columns))
                out[table.name] = [dict(r._mapping) for r in connection.execute(query)]
            return out
    finally:
        engine.dispose()


def _table_names(database_url: str) -> set[str]:
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            return set(sa.inspect(connection).get_table_names())
    finally:
        engine.dispose()


def _json_nulls(database_url: str) -> list[tuple]:
    """Which filings have no test report as SQL NULL (the JSON type reads a JSON null as None too)."""
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            query = sa.text("SELECT id, test_report IS NULL FROM filing WHERE state = 'draft' ORDER BY id")
            return [tuple(row) for row in connection.execute(query)]
    finally:
        engine.dispose()


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _build_source(instance: Path, database_url: str) -> dict:
    """The demo province, one finished audit, then a backup of it through the command (a plain tar)."""
    app = create_app({"INSTANCE_PATH": str(instance), "DATABASE_URL": database_url, "DEMO": True})
    state = app.extensions["registry"]
    try:
        migrations.upgrade(state.engine)
        with transaction(state.engine) as session:
            demo.load(session=session, content=state.content)
        with transaction(state.engine) as session:
            credit = hashlib.sha256(demo.credit_model_bytes()).hexdigest()
            pilot = session.exec(select(Filing).where(Filing.model_sha256 == credit)).one()
            reviewer = demo._actor(session, "reviewer1")
            audit_service.start_audit(
                session=session, actor=reviewer, filing_id=pilot.id, dataset="german-credit", replicates=20
            )
        assert run_pending(engine=state.engine, content=state.content) == 1
        with state.engine.begin() as connection:  # drafts without a test report: SQL NULL, and a JSON null
            drafts = connection.execute(sa.text("SELECT id FROM filing WHERE state = 'draft' ORDER BY id")).scalars()
            first, second = list(drafts)[:2]
            connection.execute(sa.text("UPDATE filing SET test_report = NULL WHERE id = :id"), {"id": first})
            connection.execute(sa.text("UPDATE filing SET test_report = 'null' WHERE id = :id"), {"id": second})
        with Session(state.engine) as session:
            job = session.exec(select(AuditJob)).one()
            assert job.state == "done" and job.report_sha256 is not None
            approved = session.exec(select(Filing).where(Filing.state == "approved")).first()
            number = approved.filing_number
        client = app.test_client()
        checkpoint = client.get("/api/v1/log/checkpoint").get_data(as_text=True)
        assert client.get(f"/library/{number}").status_code == 200
    finally:
        state.engine.dispose()
    backup = instance.parent / "registry-backup.tar"
    made = _cli(_env(instance, database_url), "backup", str(backup))
    assert made.exit_code == 0, made.output
    return {
        "instance": instance,
        "url": database_url,
        "backup": backup,
        "filing_number": number,
        "checkpoint": checkpoint,
        "report_sha256": job.report_sha256,
        "rows": _every_row(database_url),
        "nulls": _json_nulls(database_url),
    }


@pytest.fixture(scope="module")
def sqlite_source(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("sqlite-source")
    return _build_source(folder / "instance", f"sqlite:///{folder / 'instance' / 'registry.sqlite3'}")


def _new_postgres_database(admin) -> str:
    name = f"registry_backup_{uuid.uuid4().hex[:12]}"
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    return name


def _drop_postgres_database(admin, name: str) -> None:
    with admin.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="module")
def postgresql_source(tmp_path_factory, postgres_admin) -> dict:
    name = _new_postgres_database(postgres_admin)
    try:
        yield _build_source(tmp_path_factory.mktemp("postgres-source") / "instance", _database_url(name))
    finally:
        _drop_postgres_database(postgres_admin, name)


@pytest.fixture
def empty_postgres(postgres_admin):
    """A PostgreSQL database with no tables at all."""
    name = _new_postgres_database(postgres_admin)
    yield _database_url(name)
    _drop_postgres_database(postgres_admin, name)


def _source(request, kind: str) -> dict:
    if kind == "postgresql" and not POSTGRES_URL:
        require_service("REGISTRY_TEST_POSTGRES_URL is not set")
    return request.getfixturevalue(f"{kind}_source")


def _target(request, kind: str, folder: Path) -> str:
    if kind == "postgresql":
        if not POSTGRES_URL:
            require_service("REGISTRY_TEST_POSTGRES_URL is not set")
        return request.getfixturevalue("empty_postgres")
    return f"sqlite:///{folder / 'instance' / 'registry.sqlite3'}"


# --- restoring -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source_kind", "target_kind"),
    [("sqlite", "sqlite"), ("sqlite", "postgresql"), ("postgresql", "sqlite"), ("postgresql", "postgresql")],
)
def test_a_backup_restores_into_an_empty_instance_with_the_same_rows_files_keys_and_a_verifying_log(
    request, tmp_path, source_kind, target_kind
):
    source = _source(request, source_kind)
    target_url = _target(request, target_kind, tmp_path)
    instance = tmp_path / "instance"
    # On PostgreSQL the log key goes where REGISTRY_LOG_SIGNING_KEY_FILE points; on SQLite into the instance folder.
    key_file = tmp_path / "keys" / "log-signing-key" if target_kind == "postgresql" else None
    env = _env(instance, target_url, key_file)

    restored = _cli(env, "restore", str(source["backup"]))
    assert restored.exit_code == 0, restored.output
    assert "The decision log verifies: 12 entries." in restored.output

    # every row of every table, the same values and types (timestamps, JSON documents, bytes)
    after = _every_row(target_url)
    assert set(after) == set(source["rows"])
    for table, expected in source["rows"].items():
        assert after[table] == expected, table
    assert after["log_entry"] and after["audit_job"] and after["decision"] and after["user"]
    assert _json_nulls(target_url) == source["nulls"] and {n for _id, n in source["nulls"]} == {True, False}

    # every stored file, byte for byte, and the audit report among them
    shas = [row["sha256"] for row in after["stored_file"]]
    assert source["report_sha256"] in shas
    for sha in shas:
        restored_file = instance / "files" / sha[:2] / sha[2:4] / sha
        assert _sha256(restored_file) == sha
        assert _sha256(source["instance"] / "files" / sha[:2] / sha[2:4] / sha) == sha

    # the keys, readable by their owner only
    log_key = key_file or instance / "log-signing-key"
    assert log_key.read_bytes() == (source["instance"] / "log-signing-key").read_bytes()
    assert (instance / "secret_key").read_bytes() == (source["instance"] / "secret_key").read_bytes()
    for path in (log_key, instance / "secret_key"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600

    # `registry log verify` on the restored instance
    verified = _cli(env, "log", "verify")
    assert verified.exit_code == 0, verified.output
    assert "The decision log verifies: 12 entries." in verified.output

    # the restored app serves the library entry and the same signed checkpoint; the demo accounts log in
    config = {"INSTANCE_PATH": str(instance), "DATABASE_URL": target_url, "TESTING": True}
    app = create_app(config | ({"LOG_SIGNING_KEY_FILE": str(key_file)} if key_file else {}))
    try:
        client = app.test_client()
        entry = client.get(f"/library/{source['filing_number']}")
        assert entry.status_code == 200 and source["filing_number"] in entry.get_data(as_text=True)
        assert client.get("/api/v1/log/checkpoint").get_data(as_text=True) == source["checkpoint"]
        login = client.post(
            "/login",
            data={
                "username": "reviewer1",
                "password": demo.DEMO_PASSWORD,
                "csrf_token": csrf_token(client.get("/login").get_data(as_text=True)),
            },
        )
        assert login.status_code == 302
    finally:
        app.extensions["registry"].engine.dispose()

    # new rows get new ids (PostgreSQL's sequences were moved past the restored ones)
    created = _cli(env, "users", "create", "reviewer9", "--role", "reviewer", "--password-stdin", stdin="a-long-pw-1\n")
    assert created.exit_code == 0, created.output
    ids = [row["id"] for row in _every_row(target_url)["user"]]
    assert len(ids) == len(source["rows"]["user"]) + 1 and ids[-1] > max(ids[:-1])


def test_a_compressed_backup_is_one_file_of_mode_0600_that_is_never_overwritten_and_checks_out(sqlite_source, tmp_path):
    env = _env(sqlite_source["instance"], sqlite_source["url"])
    path = tmp_path / "nightly.tar.gz"
    old = os.umask(0o022)  # the usual umask, which makes a plain new file 0644
    try:
        made = _cli(env, "backup", str(path))
    finally:
        os.umask(old)
    assert made.exit_code == 0, made.output
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "holds secrets" in made.output
    assert [p.name for p in tmp_path.iterdir()] == ["nightly.tar.gz"]  # no partial file left
    with tarfile.open(path, "r:gz") as tar:
        manifest = json.loads(tar.extractfile("manifest.json").read())
        names = tar.getnames()
    assert manifest["alembic_revision"] == ScriptDirectory.from_config(migrations.config()).get_current_head()
    assert manifest["database"]["tables"] and all(t["rows"] >= 0 for t in manifest["database"]["tables"])
    assert {t["name"]: t["rows"] for t in manifest["database"]["tables"]} == {
        name: len(found) for name, found in sqlite_source["rows"].items()
    }
    assert set(manifest["members"]) == set(names) - {"manifest.json"}
    assert "keys/log-signing-key" in names and "keys/secret_key" in names and "log/checkpoint" in names

    again = _cli(env, "backup", str(path))
    assert again.exit_code == 1 and "never overwrites" in again.output

    checked = _cli({}, "backup", "--verify", str(path))
    assert checked.exit_code == 0, checked.output
    assert "the 12 entries rebuild the checkpoint's root" in checked.output
    assert "The backup checks out" in checked.output
    assert _cli({}, "restore", "--check", str(path)).exit_code == 0


def test_restoring_into_a_database_that_holds_data_is_refused_and_changes_nothing(app, sqlite_source):
    """The `app` fixture's database (SQLite and PostgreSQL) holds cities and accounts."""
    url = app.config["DATABASE_URL"]
    instance = Path(app.config["INSTANCE_PATH"])
    before = _every_row(url)
    refused = _cli(_env(instance, url), "restore", str(sqlite_source["backup"]))
    assert refused.exit_code == 1
    assert "is not empty" in refused.output and "city" in refused.output
    assert _every_row(url) == before
    assert not (instance / "files").exists() and not (instance / "log-signing-key").exists()


def test_a_migrated_database_with_nothing_in_it_is_empty_enough(tmp_path, sqlite_source):
    """`registry db upgrade` writes the log's head row; that is not data, and the restore replaces it."""
    url = f"sqlite:///{tmp_path / 'instance' / 'registry.sqlite3'}"
    env = _env(tmp_path / "instance", url)
    assert _cli(env, "db", "upgrade").exit_code == 0
    restored = _cli(env, "restore", str(sqlite_source["backup"]))
    assert restored.exit_code == 0, restored.output
    assert _every_row(url)["log_head"] == sqlite_source["rows"]["log_head"]
    # The session key that `db upgrade` made is kept (it only signs login cookies), and the restore says so.
    assert "kept this instance's own session key" in restored.output


def test_a_restore_never_overwrites_a_different_log_key_and_writes_nothing(tmp_path, sqlite_source):
    from registry.decision_log import keys

    instance = tmp_path / "instance"
    other = keys.write_new_key(instance / "log-signing-key", "another.example/decision-log")
    url = f"sqlite:///{instance / 'registry.sqlite3'}"
    refused = _cli(_env(instance, url), "restore", str(sqlite_source["backup"]))
    assert refused.exit_code == 1
    assert "holds a different decision-log signing key" in refused.output and "never overwrites" in refused.output
    assert sorted(p.name for p in instance.iterdir()) == ["log-signing-key"]
    assert keys.read_key(instance / "log-signing-key").verifier_key == other.verifier_key


# --- tampered backups ----------------------------------------------------------------------------------------------


def _rewrite(source: Path, target: Path, change) -> None:
    """Copy the tar member by member; ``change(name, data)`` returns new bytes, or None to drop the member."""
    with tarfile.open(source) as tar_in, tarfile.open(target, "w") as tar_out:
        for info in tar_in:
            data = change(info.name, tar_in.extractfile(info).read())
            if data is None:
                continue
            info.size = len(data)
            tar_out.addfile(info, io.BytesIO(data))


def _flip_byte(path: Path, member_prefix: str) -> None:
    """Flip one byte inside a member's data, in place (the tar itself stays well formed)."""
    with tarfile.open(path) as tar:
        info = next(i for i in tar if i.name.startswith(member_prefix))
    with path.open("r+b") as handle:
        handle.seek(info.offset_data + info.size // 2)
        byte = handle.read(1)
        handle.seek(-1, os.SEEK_CUR)
        handle.write(bytes([byte[0] ^ 0x01]))


def _decision_member(name: str) -> bool:
    return name.startswith("db/") and name.endswith("-decision.jsonl")


@pytest.mark.parametrize(
    "tamper",
    ["flip a byte of the decision rows", "flip a byte of a stored file", "remove a stored file", "drop the manifest"],
)
def test_a_tampered_backup_is_refused_before_anything_is_written(tmp_path, sqlite_source, tamper):
    backup = tmp_path / "backup.tar"
    if tamper == "flip a byte of the decision rows":
        shutil.copy(sqlite_source["backup"], backup)
        with tarfile.open(backup) as tar:
            prefix = next(n for n in tar.getnames() if _decision_member(n))
        _flip_byte(backup, prefix)
        expected = "does not match the manifest's sha256"
    elif tamper == "flip a byte of a stored file":
        shutil.copy(sqlite_source["backup"], backup)
        _flip_byte(backup, "files/")
        expected = "does not match the manifest's sha256"
    elif tamper == "remove a stored file":
        victim = "files/" + "/".join((sqlite_source["report_sha256"][:2], sqlite_source["report_sha256"][2:4]))
        _rewrite(sqlite_source["backup"], backup, lambda name, data: None if name.startswith(victim) else data)
        expected = f"{victim}/{sqlite_source['report_sha256']} is missing"
    else:
        _rewrite(sqlite_source["backup"], backup, lambda name, data: None if name == "manifest.json" else data)
        expected = "has no manifest.json"
    instance = tmp_path / "instance"
    env = _env(instance, f"sqlite:///{instance / 'registry.sqlite3'}")

    for command in (("restore",), ("backup", "--verify")):
        refused = _cli(env, *command, str(backup))
        assert refused.exit_code == 1, refused.output
        assert expected in refused.output
    assert not instance.exists()  # no folder, no database file, no stored file, no key


def _forge(source: Path, target: Path, change) -> None:
    """A backup whose members are changed by ``change(name, data)`` and whose manifest is rewritten to match: what
    a forger (or a bug) would make, which the hashes alone cannot catch."""
    with tarfile.open(source) as tar:
        manifest = json.loads(tar.extractfile("manifest.json").read())
    members = {}

    def collect(name: str, data: bytes) -> bytes | None:
        if name == "manifest.json":
            return None
        data = change(name, data)
        members[name] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
        for table in manifest["database"]["tables"]:
            if table["member"] == name:
                table["rows"] = data.count(b"\n") - 1
        return data

    _rewrite(source, target, collect)
    manifest["members"] = members
    with tarfile.open(target, "a") as tar:
        data = json.dumps(manifest).encode("utf-8")
        info = tarfile.TarInfo("manifest.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))


def test_a_backup_whose_log_was_rewritten_with_a_matching_manifest_fails_the_log_check(tmp_path, sqlite_source):
    """The manifest's hashes catch damage; a forger who also rewrites the manifest is caught by the signed log."""

    def soften(name: str, data: bytes) -> bytes:
        if not name.endswith("-log_entry.jsonl"):
            return data
        header, *lines = data.decode("utf-8").splitlines()
        columns = json.loads(header)["columns"]
        first = json.loads(lines[0])
        leaf = json.loads(rows.decode(first[columns.index("leaf")]))
        leaf["filing_number"] = "豫算备410100-2099-9999"  # a changed leaf, re-hashed so that it looks consistent
        new_leaf = json.dumps(leaf, ensure_ascii=False, sort_keys=True).encode("utf-8")
        first[columns.index("leaf")] = rows.encode(new_leaf)
        first[columns.index("leaf_hash")] = hashlib.sha256(b"\x00" + new_leaf).hexdigest()
        lines[0] = json.dumps(first, ensure_ascii=False, separators=(",", ":"))
        return ("\n".join([header, *lines]) + "\n").encode("utf-8")

    forged = tmp_path / "forged.tar"
    _forge(sqlite_source["backup"], forged, soften)
    checked = _cli({}, "backup", "--verify", str(forged))
    assert checked.exit_code == 1
    assert "members match the manifest" in checked.output
    assert "rebuild the root" in checked.output and "not the checkpoint's" in checked.output
    assert "did NOT verify" in checked.output


@pytest.mark.parametrize("target_kind", ["sqlite", "postgresql"])
def test_a_restore_that_fails_half_way_through_the_rows_leaves_the_database_without_a_single_table(
    request, tmp_path, sqlite_source, target_kind
):
    """The schema and every row are one transaction: a row that breaks a constraint undoes the migrations too."""

    def duplicate_a_decision(name: str, data: bytes) -> bytes:
        if not _decision_member(name):
            return data
        return data + data.splitlines(keepends=True)[-1]  # the same primary key twice

    forged = tmp_path / "forged.tar"
    _forge(sqlite_source["backup"], forged, duplicate_a_decision)
    target_url = _target(request, target_kind, tmp_path)
    refused = _cli(_env(tmp_path / "instance", target_url), "restore", str(forged))
    assert refused.exit_code == 1, refused.output
    assert "could not be inserted" in refused.output and "rolled back" in refused.output
    assert _table_names(target_url) == set()


# --- the row format ------------------------------------------------------------------------------------------------


def test_values_keep_their_types_and_sql_null_differs_from_a_json_null():
    from datetime import UTC, date, datetime
    from decimal import Decimal

    values = [None, True, 7, 2**62, 0.1, "豫算备", datetime(2026, 11, 23, 8, 0, 1, 5, tzinfo=UTC), date(2026, 1, 2)]
    values += [Decimal("12.50"), b"\x00\xff", float("inf")]
    line = rows.dump_line([rows.encode(v) for v in values])
    assert [rows.decode(v) for v in json.loads(line)] == values
    assert rows.decode({"$json": None}) is sa.JSON.NULL and rows.decode(None) is None
    assert rows.decode({"$json": {"$bytes": "x"}}) == {"$bytes": "x"}  # a document is never read as a tag
    with pytest.raises(rows.RowFormatError):
        rows.decode({"$pickle": "..."})


def test_a_backup_with_a_stored_file_missing_is_refused_and_leaves_no_file(tmp_path, sqlite_source):
    instance = tmp_path / "instance"
    shutil.copytree(sqlite_source["instance"], instance)
    sha = sqlite_source["report_sha256"]
    (instance / "files" / sha[:2] / sha[2:4] / sha).unlink()
    target = tmp_path / "backup.tar"
    refused = _cli(_env(instance, f"sqlite:///{instance / 'registry.sqlite3'}"), "backup", str(target))
    assert refused.exit_code == 1
    assert "not in the content store" in refused.output and sha in refused.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["instance"]  # neither the backup nor a partial file
