"""Audit jobs on real Celery workers over a real Redis: `celery -A registry.jobs worker`, started and killed here.

Redis: REGISTRY_TEST_REDIS_URL (.ci/run starts a redis-server and sets it), else a private redis-server on a free
loopback port when the binary is installed; without either these tests skip on a developer's machine and fail
when CI=true. Each test has its own Celery queue, database and instance folder; the workers are subprocesses
with the web app's configuration, as on a worker machine. Every wait is bounded.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
from sqlmodel import Session, select

from audits import reference
from registry.audit_jobs.models import AuditJob
from registry.jobs import TASK_MAIL, TASK_REAUDIT, TASK_SWEEP, make_celery
from tests.conftest import require_service
from tests.test_audit_jobs import DATASET, file_credit_filing
from tests.test_reaudit import _done_audit  # at import: pytest rewrites (parses) a test module on first import

pytestmark = pytest.mark.slow

LEASE_SECONDS = 3  # short, so a killed worker's job is claimed again within seconds
WAIT_SECONDS = 120  # the bound on every wait for a job


# --- Redis ---------------------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _redis_answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    configured = os.environ.get("REGISTRY_TEST_REDIS_URL")
    if configured:
        yield configured
        return
    binary = shutil.which("redis-server")
    if binary is None:
        require_service("no Redis: set REGISTRY_TEST_REDIS_URL or install redis-server")
    port = _free_port()
    folder = tmp_path_factory.mktemp("redis")
    server = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(folder)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while not _redis_answers("127.0.0.1", port):
            if time.monotonic() > deadline or server.poll() is not None:
                pytest.fail("redis-server did not start")
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.terminate()
        server.wait(10)


# --- models --------------------------------------------------------------------------------------------------------


def _slow_front(k: int, iterations: int, width: int = 64):
    """An ONNX graph X → X that spends time in a Loop of MatMul/Tanh first (its result is multiplied by zero)."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    body = helper.make_graph(
        [
            helper.make_node("MatMul", ["z_in", "w"], ["m"]),
            helper.make_node("Tanh", ["m"], ["z_out"]),
            helper.make_node("Identity", ["c_in"], ["c_out"]),
        ],
        "body",
        [
            helper.make_tensor_value_info("i", TensorProto.INT64, []),
            helper.make_tensor_value_info("c_in", TensorProto.BOOL, []),
            helper.make_tensor_value_info("z_in", TensorProto.FLOAT, None),
        ],
        [
            helper.make_tensor_value_info("c_out", TensorProto.BOOL, []),
            helper.make_tensor_value_info("z_out", TensorProto.FLOAT, None),
        ],
    )
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["X", "w0"], ["z0"]),
            helper.make_node("Loop", ["trips", "cond", "z0"], ["z_end"], body=body),
            helper.make_node("ReduceSum", ["z_end"], ["s"], keepdims=1),
            helper.make_node("Mul", ["s", "zero"], ["s0"]),
            helper.make_node("Add", ["X", "s0"], ["X2"]),
        ],
        "slow_front",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, k])],
        [helper.make_tensor_value_info("X2", TensorProto.FLOAT, [None, k])],
        initializer=[
            numpy_helper.from_array((rng.standard_normal((k, width)) * 0.01).astype(np.float32), "w0"),
            numpy_helper.from_array((rng.standard_normal((width, width)) * 0.1).astype(np.float32), "w"),
            numpy_helper.from_array(np.array(iterations, dtype=np.int64), "trips"),
            numpy_helper.from_array(np.array(True), "cond"),
            numpy_helper.from_array(np.array(0.0, dtype=np.float32), "zero"),
        ],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.fixture(scope="session")
def credit_models():
    """A logistic regression on German credit's numeric columns, and the same model made slow (the audit runs it on
    the data set and then on about forty permuted copies for the explainability step, so ~0.4 s a pass makes an audit
    of ten to twenty seconds), so that a worker can be killed in the middle of its audit."""
    import onnx
    import onnxruntime as ort
    from onnx import compose
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression

    data = reference.load(DATASET)
    columns = [c for c in data.features.columns if data.features[c].dtype.kind in "if"]
    x = data.features[columns].to_numpy(dtype=np.float32)
    fitted = LogisticRegression(max_iter=2000).fit(x, data.y_true)
    fast = to_onnx(fitted, x[:1], options={id(fitted): {"zipmap": False}}, target_opset=17)

    def slow(iterations: int):
        front = _slow_front(len(columns), iterations)
        front.ir_version = fast.ir_version
        merged = compose.merge_models(front, fast, io_map=[("X2", fast.graph.input[0].name)])
        onnx.checker.check_model(merged)
        return merged

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    probe = ort.InferenceSession(slow(5000).SerializeToString(), options, providers=["CPUExecutionProvider"])
    started = time.perf_counter()
    probe.run(None, {"X": x})
    per_iteration = (time.perf_counter() - started) / 5000
    iterations = int(min(2_000_000, max(5_000, 0.4 / per_iteration)))  # about 0.4 s per pass over 1,000 rows
    return {
        "columns": columns,
        "fast": fast.SerializeToString(),
        "slow": slow(iterations).SerializeToString(),
        "predictions": fitted.predict(x),
    }


# --- workers -------------------------------------------------------------------------------------------------------


class Workers:
    """Celery workers for one test's app: same database, instance folder, broker and a queue of its own."""

    def __init__(self, app, redis_url: str, folder: Path) -> None:
        self.queue = f"audits-test-{uuid.uuid4().hex[:10]}"
        self.folder = folder
        self.env = os.environ | {
            "DATABASE_URL": app.config["DATABASE_URL"],
            "REGISTRY_INSTANCE": app.config["INSTANCE_PATH"],
            "REGISTRY_SECRET_KEY": "test-secret-key",
            "REGISTRY_MAX_MODEL_BYTES": str(app.config["MAX_MODEL_BYTES"]),
            "REGISTRY_BROKER_URL": redis_url,
            "REGISTRY_CELERY_QUEUE": self.queue,
            "REGISTRY_AUDIT_LEASE_SECONDS": str(LEASE_SECONDS),
            "REGISTRY_LOG_SIGNING_KEY_FILE": app.config["LOG_SIGNING_KEY_FILE"],  # expiries are logged decisions
        }
        self.env.pop("CI", None)  # the worker is not a test run
        self.processes: dict[str, tuple[subprocess.Popen, Path]] = {}
        app.config.update(BROKER_URL=redis_url, CELERY_QUEUE=self.queue, AUDIT_LEASE_SECONDS=LEASE_SECONDS)
        app.extensions.pop("audit_queue", None)
        self.celery = make_celery(app.config)

    def start(self, name: str) -> subprocess.Popen:
        log = self.folder / f"celery-{name}.log"
        with log.open("wb") as output:  # the worker keeps its own descriptor
            process = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "registry.jobs", "worker", "--loglevel=INFO", "--concurrency=1"]
                + ["-n", f"{name}@%h", "--without-gossip", "--without-mingle", "--without-heartbeat"],
                env=self.env,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: kill() takes the pool's children with it
            )
        self.processes[name] = (process, log)
        deadline = time.monotonic() + 60
        while b" ready." not in log.read_bytes():
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"Celery worker {name} did not start:\n{log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.1)
        return process

    def kill(self, name: str) -> None:
        """SIGKILL the worker and its pool: no warm shutdown, no acknowledgement, as when a machine dies."""
        process, _log = self.processes[name]
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)

    def log(self, name: str) -> str:
        return self.processes[name][1].read_text(errors="replace")

    def stop_all(self) -> None:
        for process, _log in self.processes.values():
            if process.poll() is None:
                try:
                    os.killpg(process.pid, signal.SIGTERM)
                    process.wait(15)
                except (subprocess.TimeoutExpired, ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait(10)
        with self.celery.connection_for_write() as connection:  # leave nothing behind in a shared Redis
            connection.default_channel.queue_purge(self.queue)


@pytest.fixture
def workers(app, redis_url, tmp_path):
    pool = Workers(app, redis_url, tmp_path)
    yield pool
    pool.stop_all()


def _job(engine, job_id: int) -> AuditJob:
    with Session(engine, expire_on_commit=False) as session:
        return session.get(AuditJob, job_id)


def _wait(engine, job_id: int, until, workers: Workers, what: str) -> AuditJob:
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        job = _job(engine, job_id)
        if until(job):
            return job
        if time.monotonic() > deadline:
            logs = "\n".join(f"--- {n}\n{workers.log(n)[-2000:]}" for n in workers.processes)
            pytest.fail(f"job {job_id} never became {what}: {job.state} {job.error}\n{logs}")
        time.sleep(0.2)


def _start_audit(api, filing_id: int):
    response = api("reviewer1").post(
        f"/api/v1/filings/{filing_id}/audits", json={"dataset": DATASET, "replicates": 20, "seed": 7}
    )
    assert response.status_code == 202, response.get_json()
    return response.get_json()["id"]


# --- tests ---------------------------------------------------------------------------------------------------------


def test_an_audit_queued_through_the_api_runs_on_a_celery_worker(app, engine, api, documents, credit_models, workers):
    workers.start("w1")
    filing_id = file_credit_filing(api, documents, credit_models["fast"], credit_models["columns"])
    job_id = _start_audit(api, filing_id)
    job = _wait(engine, job_id, lambda j: j.state in ("done", "failed"), workers, "done")
    assert job.state == "done", job.error
    assert "celery:w1@" in job.worker  # a Celery worker ran it, not a thread of this process
    report = api("reviewer1").get(f"/api/v1/audits/{job_id}/report").get_json()
    data = reference.load(DATASET)
    assert report["overall"]["accuracy"] == pytest.approx(
        float((credit_models["predictions"] == data.y_true).mean()), abs=1e-9
    )


def test_a_worker_killed_in_the_middle_of_an_audit_leaves_a_job_that_is_retried_and_completes(
    app, engine, api, documents, credit_models, workers
):
    workers.start("first")
    filing_id = file_credit_filing(api, documents, credit_models["slow"], credit_models["columns"])
    job_id = _start_audit(api, filing_id)
    running = _wait(engine, job_id, lambda j: j.state == "running", workers, "running")
    assert "celery:first@" in running.worker
    time.sleep(1.5)  # well inside the audit's ten to twenty seconds
    assert _job(engine, job_id).state == "running"
    workers.kill("first")

    workers.start("second")  # a replacement worker: at start it sweeps up what the dead one held
    job = _wait(engine, job_id, lambda j: j.state in ("done", "failed"), workers, "done")
    assert job.state == "done", job.error
    assert "celery:second@" in job.worker
    assert job.attempts == 2  # the interrupted attempt counts
    report = api("reviewer1").get(f"/api/v1/audits/{job_id}/report")
    assert report.status_code == 200
    assert report.get_json()["verdict"] == job.verdict


def test_jobs_queued_while_no_worker_runs_are_run_when_one_starts(app, engine, api, documents, credit_models, workers):
    filing_id = file_credit_filing(api, documents, credit_models["fast"], credit_models["columns"])
    first, second = _start_audit(api, filing_id), _start_audit(api, filing_id)
    time.sleep(0.5)
    assert {_job(engine, first).state, _job(engine, second).state} == {"queued"}
    workers.start("late")
    for job_id in (first, second):
        job = _wait(engine, job_id, lambda j: j.state in ("done", "failed"), workers, "done")
        assert job.state == "done", job.error
        assert job.attempts == 1  # each ran once, however many messages named it


def test_an_audit_queued_while_the_broker_is_down_is_kept_and_run_when_a_worker_starts(
    app, engine, api, documents, credit_models, workers, caplog
):
    filing_id = file_credit_filing(api, documents, credit_models["fast"], credit_models["columns"])
    app.config["BROKER_URL"] = f"redis://127.0.0.1:{_free_port()}/0"  # nothing listens there
    app.extensions.pop("audit_queue", None)
    job_id = _start_audit(api, filing_id)  # the request succeeds: the job row is the record
    assert _job(engine, job_id).state == "queued"
    assert any("sweep will send it later" in r.getMessage() for r in caplog.records)

    workers.start("after-outage")  # on the real broker, with the same queue
    job = _wait(engine, job_id, lambda j: j.state in ("done", "failed"), workers, "done")
    assert job.state == "done", job.error


def test_the_beat_reaudit_task_queues_due_reaudits_that_the_workers_run(app, engine, filing_in, workers):
    from datetime import timedelta

    from registry.filings.models import Filing

    filing_id = filing_in("approved")
    _done_audit(engine, filing_id)
    with Session(engine) as session:
        due = session.get(Filing, filing_id).next_audit_due
    assert due is not None
    workers.start("beat-target")
    workers.celery.send_task(TASK_REAUDIT, kwargs={"now": (due + timedelta(days=1)).isoformat()})
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        with Session(engine) as session:
            jobs = list(
                session.exec(select(AuditJob).where(AuditJob.filing_id == filing_id, AuditJob.reason == "reaudit"))
            )
        if jobs and jobs[0].state in ("done", "failed"):
            break
        if time.monotonic() > deadline:
            pytest.fail(f"no re-audit ran: {[(j.id, j.state) for j in jobs]}\n{workers.log('beat-target')[-3000:]}")
        time.sleep(0.2)
    assert len(jobs) == 1
    assert "celery:beat-target@" in jobs[0].worker


def test_celery_beat_runs_the_sweep_and_the_reaudit_on_their_configured_schedules(app, workers):
    schedule = workers.celery.conf.beat_schedule
    assert {entry["task"] for entry in schedule.values()} >= {TASK_SWEEP, TASK_REAUDIT, TASK_MAIL}
    assert workers.celery.conf.task_serializer == "json"
    assert workers.celery.conf.accept_content == ["json"]  # a message is never unpickled


def test_the_celery_worker_started_by_ci_runs_an_audit(redis_url, credit_models, documents, password_hash):
    """.ci/run starts one worker as a deployment would (`.ci/start-celery-worker`); an audit queued by a web app
    on the same instance and broker is run by it."""
    from registry import create_app
    from registry.accounts import service as accounts
    from registry.accounts.models import User
    from registry.cities import service as cities
    from registry.cities.models import City
    from tests.conftest import PEOPLE, ApiClient

    instance = os.environ.get("REGISTRY_TEST_CELERY_INSTANCE")
    if not instance:
        require_service("REGISTRY_TEST_CELERY_INSTANCE is not set (.ci/start-celery-worker sets it)")
    app = create_app(
        {
            "INSTANCE_PATH": instance,
            "BROKER_URL": redis_url,
            "CELERY_QUEUE": os.environ["REGISTRY_TEST_CELERY_QUEUE"],
            "MAX_MODEL_BYTES": 1024 * 1024,
        }
    )
    engine = app.extensions["registry"].engine
    with Session(engine) as session:
        if session.get(City, "410100") is None:
            for code, zh, en in cities.HENAN:
                cities.add_city(session=session, code=code, name_zh=zh, name_en=en, province_code="410000")
        for username, (role, city) in PEOPLE.items():
            if session.exec(select(User).where(User.username == username)).first() is None:
                session.add(
                    User(
                        username=username, display_name=username, role=role, city_code=city, password_hash=password_hash
                    )
                )
        session.commit()

    def api(username: str) -> ApiClient:
        with Session(engine) as session:
            token, _ = accounts.create_token(
                session=session, user=accounts.get_user_by_name(session=session, username=username)
            )
            session.commit()
        return ApiClient(app.test_client(), token)

    try:
        filing_id = file_credit_filing(api, documents, credit_models["fast"], credit_models["columns"])
        job_id = _start_audit(api, filing_id)
        deadline = time.monotonic() + WAIT_SECONDS
        while (job := _job(engine, job_id)).state not in ("done", "failed"):
            if time.monotonic() > deadline:
                pytest.fail(
                    f"the CI worker did not run job {job_id}: {job.state}\n{Path(instance, 'celery.log').read_text()[-3000:]}"
                )
            time.sleep(0.2)
        assert job.state == "done", job.error
        assert "celery:ci@" in job.worker
    finally:
        engine.dispose()
