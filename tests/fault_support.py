"""Real processes for the fault tests: registry servers (gunicorn or `registry serve`), a private PostgreSQL
cluster, a private redis-server and Celery workers, each on a free loopback port, each killed in teardown; and the
checks that nothing was lost or half-written.

Every wait is bounded; a process that does not come up fails the test with the end of its log.
"""

from __future__ import annotations

import glob
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa
from sqlmodel import Session, select

from tests import fault_points
from tests.conftest import require_service

ROOT = Path(__file__).resolve().parent.parent
START_SECONDS = 60  # the bound on a server's start
REQUEST_SECONDS = 20  # the bound on one request: more is a hang


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(condition, *, seconds: float, what: str, every: float = 0.1, log=None):
    """Poll ``condition`` until it returns something true (returned), or fail the test after ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {seconds} s waiting for {what}" + (f"\n{log()}" if log else ""))
        time.sleep(every)


def _kill_group(process: subprocess.Popen, sig=signal.SIGKILL) -> None:
    if process.poll() is None:
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            pass
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


def server_env(app, **extra: str) -> dict[str, str]:
    """The environment of a server process for the test's app: same database, instance folder and keys."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_") and k not in ("DATABASE_URL", "CI")}
    env.update(
        {
            "PYTHONPATH": str(ROOT),
            "DATABASE_URL": app.config["DATABASE_URL"],
            "REGISTRY_INSTANCE": app.config["INSTANCE_PATH"],
            "REGISTRY_SECRET_KEY": "test-secret-key",
            "REGISTRY_MAX_MODEL_BYTES": str(app.config["MAX_MODEL_BYTES"]),
            "REGISTRY_LOG_SIGNING_KEY_FILE": app.config["LOG_SIGNING_KEY_FILE"],
        }
    )
    env.update(extra)
    return env


@dataclass
class Server:
    """One server process (group); ``url`` is its loopback address."""

    process: subprocess.Popen
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def kill(self) -> None:
        """SIGKILL the server and every process it started: no clean shutdown, as when a machine loses power."""
        _kill_group(self.process, signal.SIGKILL)


@dataclass
class Servers:
    """Starts servers for one test and kills every one of them in teardown."""

    folder: Path
    started: list[Server] = field(default_factory=list)
    others: list = field(default_factory=list)  # anything else with a kill(): workers, brokers
    fault_folder: Path = field(init=False)

    def __post_init__(self) -> None:
        self.fault_folder = self.folder / "faults"
        self.fault_folder.mkdir(parents=True, exist_ok=True)

    def gunicorn(self, env: dict[str, str], *, fault: str | None = None, workers: int = 2, wrap=()) -> Server:
        port = free_port()
        command = [sys.executable, "-m", "gunicorn", "--chdir", str(ROOT), "-w", str(workers)]
        command += ["-b", f"127.0.0.1:{port}", "--timeout", "300", "--graceful-timeout", "5", "--preload"]
        command.append("tests.fault_app:app")  # --preload: the app is built once, then the workers fork
        return self._start(list(wrap) + command, env, port, fault)

    def serve(self, env: dict[str, str], *, fault: str | None = None) -> Server:
        """`registry serve` (werkzeug, with its in-process audit worker)."""
        port = free_port()
        command = [sys.executable, "-m", "tests.fault_serve", "serve", "--host", "127.0.0.1", "--port", str(port)]
        return self._start(command, env, port, fault)

    def _start(self, command: list[str], env: dict[str, str], port: int, fault: str | None) -> Server:
        env = dict(env)
        if fault:
            env[fault_points.POINT] = fault
            env[fault_points.FOLDER] = str(self.fault_folder)
            fault_points.reached_marker(self.fault_folder, fault).unlink(missing_ok=True)
        log_path = self.folder / f"server-{len(self.started)}-{port}.log"
        with log_path.open("wb") as output:
            process = subprocess.Popen(
                command, env=env, cwd=ROOT, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
            )
        server = Server(process, port, log_path)
        self.started.append(server)

        def ready():
            if process.poll() is not None:
                pytest.fail(f"the server exited ({process.returncode}):\n{server.log()}")
            try:
                return requests.get(server.url + "/healthz", timeout=2).status_code == 200
            except requests.RequestException:
                return False

        wait_for(ready, seconds=START_SECONDS, what="the server to answer /healthz", every=0.2, log=server.log)
        return server

    def reached(self, fault: str, server: Server, seconds: float = 60) -> None:
        marker = fault_points.reached_marker(self.fault_folder, fault)
        wait_for(marker.exists, seconds=seconds, what=f"failpoint {fault}", log=server.log)

    def adopt(self, process):
        """Kill ``process`` (anything with a kill()) in teardown too; returns it."""
        self.others.append(process)
        return process

    def stop_all(self) -> None:
        for process in self.started + self.others:
            process.kill()


# --- what is stored ------------------------------------------------------------------------------------------------


def table_rows(engine, *tables: str) -> dict[str, list[tuple]]:
    """Every row of each table, in primary-key order: compared before and after a fault."""
    metadata = sa.MetaData()
    found = {}
    with engine.connect() as connection:
        for name in tables:
            table = sa.Table(name, metadata, autoload_with=connection)
            found[name] = [tuple(row) for row in connection.execute(sa.select(table).order_by(*table.primary_key))]
    return found


def incoming_leftovers(files_root: Path) -> list[str]:
    folder = files_root / "incoming"
    return sorted(p.name for p in folder.glob("upload-*")) if folder.is_dir() else []


def assert_store_consistent(engine, files_root: Path) -> None:
    """Every stored-file record has its bytes (right size and digest), and every attachment has its record."""
    from registry.filings.models import Attachment
    from registry.storage.models import StoredFile

    with Session(engine) as session:
        records = session.exec(select(StoredFile)).all()
        attachments = session.exec(select(Attachment)).all()
    for record in records:
        path = files_root / record.sha256[:2] / record.sha256[2:4] / record.sha256
        assert path.is_file(), f"stored_file {record.sha256} has no bytes"
        data = path.read_bytes()
        assert len(data) == record.size and hashlib.sha256(data).hexdigest() == record.sha256
    known = {r.sha256 for r in records}
    for attachment in attachments:
        assert attachment.sha256 in known, f"attachment {attachment.id} points at no stored file"


def verify_log(env: dict[str, str], state_folder: Path, url: str | None = None) -> str:
    """`registry log verify` (against the database, or --url through the public API); fails the test unless it
    verifies. Returns its output."""
    state = state_folder / f"log-state-{'url' if url else 'db'}-{time.monotonic_ns()}.json"
    command = [sys.executable, "-m", "registry.cli", "log", "verify", "--state", str(state)]
    if url:
        command += ["--url", url]
    done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "The decision log verifies" in done.stdout
    return done.stdout


# --- a private PostgreSQL cluster ----------------------------------------------------------------------------------


def _postgres_bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


class PrivatePostgres:
    """A PostgreSQL cluster of this test alone (initdb in a temporary folder, a free port, trust on loopback), so
    that it can be stopped and started without touching anyone else's. As root, it runs as the postgres user."""

    def __init__(self) -> None:
        self.pg_ctl, initdb = _postgres_bin("pg_ctl"), _postgres_bin("initdb")
        if not self.pg_ctl or not initdb:
            require_service("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
        self.as_root = os.geteuid() == 0
        self.folder = Path(tempfile.mkdtemp(prefix="registry-faults-pg-"))
        if self.as_root:
            shutil.chown(self.folder, "postgres", "postgres")
        self.data = self.folder / "data"
        self.port = free_port()
        self._run([initdb, "-D", str(self.data), "-U", "registry", "--auth=trust", "-E", "UTF8", "--no-sync"])
        options = f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories={self.folder}"
        self.options = options + " -c fsync=off -c max_connections=50"
        self.start()

    def _run(self, command: list[str], timeout: float = 60) -> None:
        if self.as_root:
            command = ["runuser", "-u", "postgres", "--"] + command
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            pytest.fail(f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}")

    def start(self) -> None:
        log = self.folder / "postgres.log"
        self._run([self.pg_ctl, "-D", str(self.data), "-l", str(log), "-o", self.options, "-w", "-t", "60", "start"])

    def stop(self) -> None:
        self._run([self.pg_ctl, "-D", str(self.data), "-m", "fast", "-w", "-t", "60", "stop"])

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://registry@127.0.0.1:{self.port}/{database}"

    def close(self) -> None:
        try:
            self._run([self.pg_ctl, "-D", str(self.data), "-m", "immediate", "-w", "-t", "30", "stop"])
        except BaseException:  # already stopped
            pass
        shutil.rmtree(self.folder, ignore_errors=True)


# --- a private redis-server ----------------------------------------------------------------------------------------


class PrivateRedis:
    """A redis-server of this test alone, without persistence: a restart loses every message it held."""

    def __init__(self, folder: Path) -> None:
        self.binary = shutil.which("redis-server")
        if self.binary is None:
            require_service("redis-server is not installed")
        self.folder, self.port = folder, free_port()
        self.process: subprocess.Popen | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def start(self) -> None:
        command = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.process = subprocess.Popen(
            command + ["--dir", str(self.folder)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        wait_for(self.answers, seconds=15, what="redis-server to answer PING")

    def kill(self) -> None:
        if self.process is not None:
            _kill_group(self.process, signal.SIGKILL)
            self.process = None


class CeleryWorker:
    """`celery -A registry.jobs worker -B` (with its beat, so the sweep runs every few seconds)."""

    def __init__(self, env: dict[str, str], folder: Path, name: str) -> None:
        self.log_path = folder / f"celery-{name}.log"
        command = [sys.executable, "-m", "celery", "-A", "registry.jobs", "worker", "--loglevel=INFO"]
        command += ["--concurrency=1", "-n", f"{name}@%h", "--without-gossip", "--without-mingle"]
        command += ["--without-heartbeat", "-B", "-s", str(folder / f"beat-{name}")]
        with self.log_path.open("wb") as output:
            self.process = subprocess.Popen(
                command, env=env, cwd=ROOT, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
            )
        wait_for(
            lambda: b" ready." in self.log_path.read_bytes() or self.process.poll() is not None,
            seconds=60,
            what="the Celery worker to start",
            log=self.log,
        )
        if self.process.poll() is not None:
            pytest.fail(f"the Celery worker exited:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def kill(self) -> None:
        _kill_group(self.process, signal.SIGKILL)
