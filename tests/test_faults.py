"""Faults against real processes (issue 7): the app killed in the middle of an upload, a decision and an audit; the
database restarted (and, on SQLite, locked by another process); the Redis broker restarted; the disk full while a
model is stored. After each: nothing lost or half-written (database rows and stored files compared before and
after), jobs finish once, and the decision log verifies.

The servers are gunicorn (``tests.fault_app``) or ``registry serve`` (``tests.fault_serve``) subprocesses on free
loopback ports, on the test's own database and instance folder; a kill is SIGKILL to the whole process group. To
kill at an exact moment, a server is started with a test-only failpoint (``tests.fault_points``). Every wait is
bounded; every process is killed in teardown.
"""

from __future__ import annotations

import copy
import errno
import io
import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
import requests
from sqlmodel import Session, select

from registry import create_app, demo, migrations
from registry.accounts import service as accounts
from registry.audit_jobs.models import AuditJob
from registry.decision_log import service as decision_log
from registry.decisions.models import Decision
from registry.errors import InsufficientStorage
from registry.filings import risk as filings_risk
from registry.filings.models import Attachment, Filing
from registry.storage.files import LocalContentStore
from registry.storage.models import StoredFile
from schemas import validation
from tests import test_audit_jobs
from tests.conftest import seed_people
from tests.fault_support import (
    REQUEST_SECONDS,
    CeleryWorker,
    PrivatePostgres,
    PrivateRedis,
    Servers,
    assert_store_consistent,
    incoming_leftovers,
    server_env,
    table_rows,
    verify_log,
    wait_for,
)

pytestmark = pytest.mark.slow
DATASET, file_credit_filing = test_audit_jobs.DATASET, test_audit_jobs.file_credit_filing
credit_model = test_audit_jobs.credit_model  # the session fixture: a real scikit-learn model as ONNX
SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
PROBLEM = "application/problem+json"


@pytest.fixture
def servers(tmp_path):
    pool = Servers(tmp_path / "servers")
    yield pool
    pool.stop_all()


def _bearer(token: str, **headers: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **headers}


def _files_root(app) -> Path:
    return Path(app.config["INSTANCE_PATH"]) / "files"


def _upload(server, token: str, filing_id: int, model: bytes, key: str) -> requests.Response:
    return requests.post(
        f"{server.url}/api/v1/filings/{filing_id}/attachments",
        headers=_bearer(token, **{"Idempotency-Key": key}),
        data={"kind": "model"},
        files={"file": ("model.onnx", model, "application/octet-stream")},
        timeout=REQUEST_SECONDS,
    )


def _in_background(call) -> threading.Thread:
    """Send a request that the server will never answer (it is killed at a failpoint meanwhile)."""

    def run():
        try:
            call()
        except requests.RequestException:
            pass  # the connection dies with the server

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _multipart(fields: dict[str, str], filename: str, data: bytes) -> tuple[bytes, str]:
    boundary = f"fault-{uuid.uuid4().hex}"
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    ]
    parts.append(
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


UPLOAD_TABLES = ("filing", "attachment", "stored_file", "idempotency_record", "filing_transition")


# --- 1. killed in the middle of a model upload ----------------------------------------------------------------------


def test_the_app_killed_in_the_middle_of_a_model_upload_keeps_nothing_and_the_retry_succeeds_once(
    app, engine, filing_in, token_for, servers
):
    filing_id = filing_in("draft")
    token = token_for("zhengzhou")
    env = server_env(app)
    files = _files_root(app)
    model = demo.tiny_model_bytes(n_inputs=4, seed=0.77)
    key = f"upload-{uuid.uuid4().hex}"
    before = table_rows(engine, *UPLOAD_TABLES)
    files_before = sorted(p for p in files.rglob("*") if p.is_file())

    # (a) Killed while the body is still arriving (sent slowly, half of it, then nothing).
    server = servers.gunicorn(env, fault="upload-stored")
    body, content_type = _multipart({"kind": "model"}, "model.onnx", model)
    head = (
        f"POST /api/v1/filings/{filing_id}/attachments HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
        f"Authorization: Bearer {token}\r\nIdempotency-Key: {key}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as client:
        client.sendall(head + body[: len(body) // 3])
        time.sleep(0.5)
        client.sendall(body[len(body) // 3 : len(body) // 2])
        time.sleep(0.5)
        assert server.process.poll() is None
        server.kill()
    assert table_rows(engine, *UPLOAD_TABLES) == before
    assert sorted(p for p in files.rglob("*") if p.is_file()) == files_before

    # (b) Killed after the whole file is in incoming/ and checked, before it is kept and recorded.
    server = servers.gunicorn(env, fault="upload-stored")
    _in_background(lambda: _upload(server, token, filing_id, model, key))
    servers.reached("upload-stored", server)
    left = incoming_leftovers(files)
    assert len(left) == 1  # the half-done write, locked by its (now killed) writer
    server.kill()
    assert table_rows(engine, *UPLOAD_TABLES) == before  # no record, no idempotency answer
    assert_store_consistent(engine, files)

    # Restarted: the client's retry with the same Idempotency-Key succeeds, and the leftover is swept.
    server = servers.gunicorn(env)
    retry = _upload(server, token, filing_id, model, key)
    assert retry.status_code == 201, retry.text
    assert retry.headers.get("Idempotent-Replayed") is None  # the first attempt never happened
    assert incoming_leftovers(files) == []
    again = _upload(server, token, filing_id, model, key)
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == retry.json()
    with Session(engine) as session:
        filing = session.get(Filing, filing_id)
        uploads = session.exec(select(Attachment).where(Attachment.sha256 == retry.json()["sha256"])).all()
        assert filing.model_sha256 == retry.json()["sha256"]
        assert len(uploads) == 1  # once, however many times it was sent
    after = table_rows(engine, *UPLOAD_TABLES)
    assert len(after["attachment"]) == len(before["attachment"]) + 1
    assert len(after["stored_file"]) == len(before["stored_file"]) + 1
    assert_store_consistent(engine, files)


# --- 2. killed in the middle of a decision --------------------------------------------------------------------------

DECISION_TABLES = ("decision", "filing", "filing_transition", "log_entry", "log_head", "idempotency_record")


def _decision_state(engine, decision_id: int) -> tuple:
    with Session(engine) as session:
        decision = session.get(Decision, decision_id)
        filing = session.get(Filing, decision.filing_id)
        entry = decision_log.entry_or_none(session, decision_id)
        return decision.state, filing.state, filing.filing_number, entry is not None, decision_log.tree_size(session)


def test_the_app_killed_in_the_middle_of_a_countersignature_leaves_the_decision_and_its_log_entry_together(
    app, engine, api, filing_in, token_for, servers, tmp_path
):
    filing_in("approved")  # a decision already in the log, so that the log has a history to keep
    filing_id = filing_in("under_review")  # tier III: a second reviewer's countersignature makes it effective
    proposed = api("reviewer1").post(f"/api/v1/filings/{filing_id}/decisions", json={"outcome": "approved"})
    assert proposed.status_code == 201 and proposed.get_json()["state"] == "proposed"
    decision_id = proposed.get_json()["id"]
    token = token_for("reviewer2")
    env = server_env(app)
    key = f"countersign-{uuid.uuid4().hex}"
    url = f"/api/v1/decisions/{decision_id}/countersign"
    before = table_rows(engine, *DECISION_TABLES)
    size_before = _decision_state(engine, decision_id)[-1]

    def countersign(server):
        return requests.post(
            server.url + url, headers=_bearer(token, **{"Idempotency-Key": key}), timeout=REQUEST_SECONDS
        )

    # Killed before the log entry is written, then after it is written but before the commit: neither is kept.
    for fault in ("decision-before-log", "decision-after-log"):
        server = servers.gunicorn(env, fault=fault)
        _in_background(lambda server=server: countersign(server))
        servers.reached(fault, server)
        server.kill()
        assert table_rows(engine, *DECISION_TABLES) == before, fault
        assert _decision_state(engine, decision_id) == ("proposed", "under_review", None, False, size_before)

    # Killed after the commit, before the answer: both are kept; the retry gets the first answer, nothing twice.
    server = servers.gunicorn(env, fault="decision-after-commit")
    _in_background(lambda: countersign(server))
    servers.reached("decision-after-commit", server)
    server.kill()
    state, filing_state, number, logged, size = _decision_state(engine, decision_id)
    assert (state, filing_state, logged, size) == ("effective", "approved", True, size_before + 1)
    assert number is not None

    server = servers.gunicorn(env)
    retry = countersign(server)
    assert retry.status_code == 200, retry.text
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert retry.json()["state"] == "effective" and retry.json()["filing_number"] == number
    assert _decision_state(engine, decision_id) == (state, filing_state, number, True, size_before + 1)
    fresh = requests.post(server.url + url, headers=_bearer(token), timeout=REQUEST_SECONDS)
    assert fresh.status_code == 409 and fresh.headers["Content-Type"].startswith(PROBLEM)  # not signed twice

    verify_log(env, tmp_path)
    verify_log(env, tmp_path, url=server.url)


# --- 6. the disk full while a model is stored -----------------------------------------------------------------------


def _tmpfs_possible() -> bool:
    probe = Path(tempfile_dir()) / f"registry-faults-probe-{uuid.uuid4().hex[:8]}"
    probe.mkdir()
    try:
        done = subprocess.run(
            ["unshare", "-m", "--propagation", "private", "sh", "-c", 'mount -t tmpfs -o size=1m tmpfs "$0"', probe],
            capture_output=True,
            timeout=10,
        )
        return done.returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False
    finally:
        probe.rmdir()


def tempfile_dir() -> str:
    import tempfile

    return tempfile.gettempdir()


@SQLITE_ONLY
def test_a_full_disk_while_a_model_is_stored_answers_507_keeps_nothing_and_the_upload_succeeds_once_freed(
    app, engine, api, documents, token_for, servers
):
    """The content store is a 1 MiB tmpfs of the server's own (a private mount namespace, `unshare -m`), filled
    up to 32 KiB; without mount rights the server runs under RLIMIT_FSIZE instead (EFBIG, the same answer)."""
    created = api("zhengzhou").post(
        "/api/v1/filings", json={"technical_document": documents.technical_document, "test_report": None}
    )
    assert created.status_code == 201, created.get_json()
    filing_id = created.get_json()["id"]
    token = token_for("zhengzhou")
    files = _files_root(app)
    files.mkdir(parents=True, exist_ok=True)
    model = demo.tiny_model_bytes(n_inputs=60_000, seed=0.01)  # about 240 KB
    assert len(model) > 200_000
    key = f"disk-full-{uuid.uuid4().hex}"
    env = server_env(app)
    tmpfs = _tmpfs_possible()
    if tmpfs:
        mount = 'mount -t tmpfs -o size=1m tmpfs "$0" && exec "$@"'
        server = servers.gunicorn(
            env, wrap=["unshare", "-m", "--propagation", "private", "sh", "-c", mount, str(files)]
        )
        seen = Path(f"/proc/{server.pid}/root") / str(files).lstrip("/")  # the store as the server sees it
        room = os.statvfs(seen)
        filler = seen / "filler"
        filler.write_bytes(b"\0" * (room.f_bavail * room.f_frsize - 32 * 1024))
    else:
        limit = 128 * 1024  # a file of the server's may not grow past this; the SQLite database is written in place
        server = servers.gunicorn(env, wrap=["prlimit", f"--fsize={limit}", "--"])
        seen, filler = files, None
    before = table_rows(engine, *UPLOAD_TABLES)

    for _ in range(2):  # refused each time, nothing kept, nothing remembered for the key
        full = _upload(server, token, filing_id, model, key)
        assert full.status_code == 507, full.text
        assert full.headers["Content-Type"].startswith(PROBLEM)
        problem = full.json()
        assert problem["status"] == 507 and problem["type"].endswith(":insufficient_storage")
        assert problem["errors"][0]["pointer"] == "/file"
        assert incoming_leftovers(seen) == []
        assert not [p for p in seen.rglob("*") if p.is_file() and p.name != "filler"]
        assert table_rows(engine, *UPLOAD_TABLES) == before
    assert requests.get(f"{server.url}/api/v1/filings/{filing_id}", headers=_bearer(token), timeout=10).ok

    if filler is not None:
        filler.unlink()  # space is freed; the same server goes on
    else:
        server.kill()
        server = servers.gunicorn(env)
    stored = _upload(server, token, filing_id, model, key)
    assert stored.status_code == 201, stored.text
    replay = _upload(server, token, filing_id, model, key)
    assert replay.status_code == 201 and replay.headers["Idempotent-Replayed"] == "true"
    sha256 = stored.json()["sha256"]
    assert (seen / sha256[:2] / sha256[2:4] / sha256).read_bytes() == model
    after = table_rows(engine, *UPLOAD_TABLES)
    assert len(after["attachment"]) == len(before["attachment"]) + 1
    with Session(engine) as session:
        assert session.get(Filing, filing_id).model_sha256 == sha256
        assert session.get(StoredFile, sha256).size == len(model)
    assert_store_consistent(engine, seen)


# --- 3. killed in the middle of an audit (the in-process worker of `registry serve`) -------------------------------


def _job(engine, job_id: int) -> AuditJob:
    with Session(engine, expire_on_commit=False) as session:
        return session.get(AuditJob, job_id)


def _queue_audit(server, token: str, filing_id: int) -> int:
    response = requests.post(
        f"{server.url}/api/v1/filings/{filing_id}/audits",
        headers=_bearer(token),
        json={"dataset": DATASET, "replicates": 20, "seed": 7},
        timeout=REQUEST_SECONDS,
    )
    assert response.status_code == 202, response.text
    return response.json()["id"]


def _check_report(server, token: str, engine, files: Path, job_id: int) -> None:
    """The job's report is complete: it validates against its schema and is the stored file it names."""
    job = _job(engine, job_id)
    response = requests.get(f"{server.url}/api/v1/audits/{job_id}/report", headers=_bearer(token), timeout=30)
    assert response.status_code == 200, response.text
    assert validation.validate("audit-report", response.json()) == []
    assert response.json()["verdict"] == job.verdict
    stored = files / job.report_sha256[:2] / job.report_sha256[2:4] / job.report_sha256
    assert json.loads(stored.read_bytes()) == response.json()


@SQLITE_ONLY
def test_registry_serve_killed_in_the_middle_of_an_audit_finishes_the_job_once_after_a_restart(
    app, engine, api, documents, credit_model, token_for, servers
):
    filing_id = file_credit_filing(api, documents, credit_model["bytes"], credit_model["columns"])
    token = token_for("reviewer1")
    env = server_env(app, REGISTRY_AUDIT_LEASE_SECONDS="3")  # a killed worker's job is claimed again within seconds
    server = servers.serve(env, fault="audit-mid-run")
    job_id = _queue_audit(server, token, filing_id)
    servers.reached("audit-mid-run", server)
    running = _job(engine, job_id)
    assert (running.state, running.attempts, running.report_sha256) == ("running", 1, None)
    server.kill()

    server = servers.serve(env)  # its worker claims the job once the dead one's lease lapses
    done = wait_for(
        lambda: (job := _job(engine, job_id)).state in ("done", "failed") and job,
        seconds=180,
        what=f"audit job {job_id} to finish",
        every=0.25,
        log=server.log,
    )
    assert done.state == "done", done.error
    assert done.attempts == 2  # the interrupted attempt counts
    _check_report(server, token, engine, _files_root(app), job_id)
    time.sleep(2)  # … and it is not run again
    assert _job(engine, job_id).finished_at == done.finished_at and _job(engine, job_id).attempts == 2
    with Session(engine) as session:
        assert len(session.exec(select(AuditJob).where(AuditJob.filing_id == filing_id)).all()) == 1
    assert_store_consistent(engine, _files_root(app))


# --- 4. the database restarted under the running app -------------------------------------------------------------


def _low_risk_document() -> dict:
    technical, _reports = demo.documents()
    for document in technical:
        answers = document["impact_assessment"]["answers"]
        if document["city_code"] == "410100" and filings_risk.assess(answers).tier in ("I", "II"):
            return copy.deepcopy(document)
    raise AssertionError("the demo data has no low-risk Zhengzhou filing")


@pytest.fixture
def private_postgres():
    cluster = PrivatePostgres()
    yield cluster
    cluster.close()


def _seeded_app(url: str, instance: Path, password_hash: str, log_key_file: str):
    """An instance on ``url`` as the ``app`` fixture makes one: migrated, the cities and the people."""
    application = create_app(
        {
            "INSTANCE_PATH": str(instance),
            "DATABASE_URL": url,
            "SECRET_KEY": "test-secret-key",
            "MAX_MODEL_BYTES": 1024 * 1024,
            "LOG_SIGNING_KEY_FILE": log_key_file,
        }
    )
    migrations.upgrade(application.extensions["registry"].engine)
    seed_people(application.extensions["registry"].engine, password_hash)
    return application


def _token(engine, username: str) -> str:
    with Session(engine) as session:
        token, _ = accounts.create_token(
            session=session, user=accounts.get_user_by_name(session=session, username=username)
        )
        session.commit()
    return token


def _file(application, state: str, document: dict, report: dict) -> int:
    with Session(application.extensions["registry"].engine, expire_on_commit=False) as session:
        filing = demo.file_to_state(
            session=session,
            content=application.extensions["registry"].content,
            city_user="zhengzhou",
            reviewer_user="reviewer1",
            technical_document=copy.deepcopy(document),
            test_report=copy.deepcopy(report),
            state=state,
        )
        session.commit()
        return filing.id


def _assert_unavailable(response: requests.Response) -> None:
    assert response.status_code == 503, response.text[:500]
    assert response.headers["Content-Type"].startswith(PROBLEM)
    assert response.json()["type"].endswith(":database_unavailable")
    assert response.headers["Retry-After"]


def test_postgresql_restarted_under_the_running_app_gives_503_meanwhile_and_loses_nothing(
    private_postgres, tmp_path, password_hash, log_key_file, documents, servers
):
    from sqlalchemy import create_engine, text

    admin = create_engine(private_postgres.url(), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text('CREATE DATABASE "registry_faults"'))
    admin.dispose()
    app = _seeded_app(private_postgres.url("registry_faults"), tmp_path / "instance", password_hash, log_key_file)
    engine = app.extensions["registry"].engine
    _file(app, "approved", documents.technical_document, documents.test_report)  # the log has a history
    pending = _file(app, "under_review", _low_risk_document(), documents.test_report)
    city, reviewer = _token(engine, "zhengzhou"), _token(engine, "reviewer1")
    with Session(engine) as session:
        filings_before = len(session.exec(select(Filing)).all())
    engine.dispose()
    env = server_env(app)
    server = servers.gunicorn(env)

    seen: list[tuple[str, int]] = []
    failures: list[str] = []
    created: dict[str, int] = {}
    stop = threading.Event()

    def client(number: int) -> None:
        http = requests.Session()
        count = 0
        while not stop.is_set():
            key = f"client{number}-{count}"
            count += 1
            try:
                deadline = time.monotonic() + 90
                while True:  # a create is retried with the same key until it is answered
                    response = http.post(
                        server.url + "/api/v1/filings",
                        headers=_bearer(city, **{"Idempotency-Key": key}),
                        json={"technical_document": documents.technical_document},
                        timeout=REQUEST_SECONDS,
                    )
                    seen.append(("create", response.status_code))
                    if response.status_code == 201:
                        created[key] = response.json()["id"]
                        break
                    _assert_unavailable(response)
                    assert time.monotonic() < deadline, "the database never came back"
                    time.sleep(0.2)
                for path, token in (("/api/v1/filings?per_page=5", city), ("/healthz", None)):
                    response = http.get(
                        server.url + path, headers=_bearer(token) if token else {}, timeout=REQUEST_SECONDS
                    )
                    seen.append((path, response.status_code))
                    if response.status_code != 200:
                        _assert_unavailable(response)
            except (AssertionError, requests.RequestException) as exc:  # a 500, a wrong answer, or a hang
                failures.append(f"{type(exc).__name__}: {exc}")
                return

    clients = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(3)]
    for thread in clients:
        thread.start()
    time.sleep(1.5)
    private_postgres.stop()  # fast shutdown: open connections are cut in the middle of their requests
    time.sleep(2.0)
    private_postgres.start()
    time.sleep(2.0)
    stop.set()
    for thread in clients:
        thread.join(120)
    assert not any(thread.is_alive() for thread in clients), "a client hung"
    assert failures == []
    assert {status for _what, status in seen} <= {200, 201, 503}
    assert 503 in {status for _what, status in seen}  # the outage was seen, and answered as such
    statuses = [status for _what, status in seen]
    print(  # the figures for docs/reliability.md (pytest -s)
        f"\nPostgreSQL restart under load: {len(seen)} requests, {statuses.count(503)} answered 503, "
        f"{statuses.count(500)} answered 500, {len(created)} filings created through retries, 0 hung"
    )
    assert len(created) >= 3

    # The same app, not restarted, works again at once.
    for n in range(5):
        response = requests.post(
            server.url + "/api/v1/filings",
            headers=_bearer(city, **{"Idempotency-Key": f"after-{n}"}),
            json={"technical_document": documents.technical_document},
            timeout=REQUEST_SECONDS,
        )
        assert response.status_code == 201, response.text
        created[f"after-{n}"] = response.json()["id"]
    decided = requests.post(
        f"{server.url}/api/v1/filings/{pending}/decisions",
        headers=_bearer(reviewer),
        json={"outcome": "approved"},
        timeout=REQUEST_SECONDS,
    )
    assert decided.status_code == 201 and decided.json()["state"] == "effective", decided.text

    # Nothing lost, nothing twice: each key made exactly one filing, and each answered filing is there.
    with Session(engine) as session:
        ids = {f.id for f in session.exec(select(Filing)).all()}
    assert set(created.values()) <= ids
    assert len(set(created.values())) == len(created)
    assert len(ids) == filings_before + len(created)
    verify_log(env, tmp_path)
    verify_log(env, tmp_path, url=server.url)
    engine.dispose()


LOCKER = """
import sqlite3, sys
connection = sqlite3.connect(sys.argv[1], isolation_level=None)
connection.execute("BEGIN IMMEDIATE")  # the write lock, as a backup tool or a sqlite3 shell in a transaction holds it
print("locked", flush=True)
sys.stdin.read()
connection.execute("ROLLBACK")
"""


@SQLITE_ONLY
def test_a_sqlite_database_locked_by_another_process_answers_503_and_works_once_released(
    app, engine, documents, token_for, servers
):
    city = token_for("zhengzhou")
    path = app.config["DATABASE_URL"].removeprefix("sqlite:///")
    env = server_env(app, DATABASE_URL=app.config["DATABASE_URL"] + "?timeout=1")  # wait 1 s for the lock
    server = servers.gunicorn(env, workers=1)
    before = table_rows(engine, "filing", "idempotency_record")
    locker = subprocess.Popen([sys.executable, "-c", LOCKER, path], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert locker.stdout.readline().strip() == b"locked"
        started = time.monotonic()
        busy = requests.post(
            server.url + "/api/v1/filings",
            headers=_bearer(city, **{"Idempotency-Key": "while-locked"}),
            json={"technical_document": documents.technical_document},
            timeout=REQUEST_SECONDS,
        )
        _assert_unavailable(busy)
        assert time.monotonic() - started < 10
        # The public side only reads: it stays up while another process writes.
        assert requests.get(server.url + "/api/v1/cities", timeout=REQUEST_SECONDS).status_code == 200
        assert requests.get(server.url + "/healthz", timeout=REQUEST_SECONDS).status_code == 200
        assert table_rows(engine, "filing", "idempotency_record") == before
    finally:
        locker.stdin.close()  # the locker rolls back and exits
        locker.wait(10)
        locker.stdout.close()
    retry = requests.post(
        server.url + "/api/v1/filings",
        headers=_bearer(city, **{"Idempotency-Key": "while-locked"}),
        json={"technical_document": documents.technical_document},
        timeout=REQUEST_SECONDS,
    )
    assert retry.status_code == 201, retry.text
    assert len(table_rows(engine, "filing")["filing"]) == len(before["filing"]) + 1


# --- 5. the Redis broker restarted ----------------------------------------------------------------------------------


@SQLITE_ONLY
def test_the_redis_broker_restarted_while_audits_are_queued_loses_no_job_and_the_web_app_answers_meanwhile(
    app, engine, api, documents, credit_model, token_for, servers, tmp_path
):
    redis = servers.adopt(PrivateRedis(tmp_path))
    env = server_env(
        app,
        REGISTRY_BROKER_URL=redis.url,
        REGISTRY_CELERY_QUEUE=f"audits-faults-{uuid.uuid4().hex[:8]}",
        REGISTRY_AUDIT_LEASE_SECONDS="3",
        REGISTRY_SWEEP_SECONDS="2",  # the beat's sweep re-sends what the broker lost
    )
    filing_id = file_credit_filing(api, documents, credit_model["bytes"], credit_model["columns"])
    token = token_for("reviewer1")
    servers.adopt(CeleryWorker(env, tmp_path, "faults"))
    server = servers.gunicorn(env)
    jobs = [_queue_audit(server, token, filing_id) for _ in range(2)]

    redis.kill()  # no persistence: every message it held is gone
    started = time.monotonic()
    assert _job(engine, jobs[-1]).state == "queued"  # its message died with the broker; only the sweep can send it
    assert requests.get(server.url + "/healthz", timeout=REQUEST_SECONDS).status_code == 200
    listed = requests.get(f"{server.url}/api/v1/filings/{filing_id}/audits", headers=_bearer(token), timeout=30)
    assert listed.status_code == 200
    jobs.append(_queue_audit(server, token, filing_id))  # queued while the broker is down: the row keeps it
    assert time.monotonic() - started < REQUEST_SECONDS
    assert _job(engine, jobs[-1]).state == "queued"
    time.sleep(1)
    redis.start()  # the same address, empty

    for job_id in jobs:
        done = wait_for(
            lambda job_id=job_id: (job := _job(engine, job_id)).state in ("done", "failed") and job,
            seconds=240,
            what=f"audit job {job_id} to finish after the broker restart",
            every=0.25,
            log=servers.others[-1].log,
        )
        assert done.state == "done", done.error
        assert done.attempts <= 2
        _check_report(server, token, engine, _files_root(app), job_id)
    with Session(engine) as session:
        assert len(session.exec(select(AuditJob).where(AuditJob.filing_id == filing_id)).all()) == 3
    assert_store_consistent(engine, _files_root(app))


# --- the content store's own guarantees, without a server -----------------------------------------------------------


def test_only_the_temporary_files_of_dead_writers_are_swept(tmp_path):
    store = LocalContentStore(tmp_path)
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    (incoming / "upload-dead").write_bytes(b"half a model")  # its writer was killed: nobody holds its lock
    (incoming / "upload-live").write_bytes(b"being written")
    writer = subprocess.Popen(  # a live writer in another process holds the lock of its file
        [sys.executable, "-c", LIVE_WRITER, str(incoming / "upload-live")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert writer.stdout.readline().strip() == b"locked"
        assert store.sweep_incoming() == ["upload-dead"]
        assert incoming_leftovers(tmp_path) == ["upload-live"]
        sha256, _size, _path = store.put_stream(io.BytesIO(b"next upload"), max_bytes=100)  # sweeps again first
        assert store.exists(sha256) and incoming_leftovers(tmp_path) == ["upload-live"]
    finally:
        writer.stdin.close()
        writer.wait(10)
        writer.stdout.close()
    assert store.sweep_incoming() == ["upload-live"]  # its writer is gone


LIVE_WRITER = """
import fcntl, sys
handle = open(sys.argv[1], "rb")
fcntl.flock(handle, fcntl.LOCK_EX)
print("locked", flush=True)
sys.stdin.read()
"""


@pytest.mark.parametrize("error", [errno.ENOSPC, errno.EDQUOT, errno.EFBIG])
def test_no_room_to_store_a_file_is_insufficient_storage_and_leaves_nothing(tmp_path, monkeypatch, error):
    store = LocalContentStore(tmp_path)

    def full(_fd):
        raise OSError(error, os.strerror(error))

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(InsufficientStorage) as raised:
        store.put_stream(io.BytesIO(b"a model"), max_bytes=100)
    assert raised.value.status == 507 and raised.value.pointer == "/file"
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []
