"""Who runs audit jobs: a small bounded pool of threads in this process, over the durable job table.

The queue backend is chosen by configuration (DESIGN.md "Backends chosen by configuration"): ``JobQueue`` is the
one thing the web code calls after it queues a job. ``InProcessQueue`` only wakes the pool (the table is the
queue, so nothing is lost if nobody is listening); ``CeleryQueue`` (``REGISTRY_BROKER_URL`` set) sends the job's
id to the Celery workers of :mod:`registry.jobs`, which claim it under the same rules.

Nothing here starts by itself: ``registry serve`` starts the pool (not when a broker is set), ``registry worker``
runs it in the foreground (or a Celery worker when a broker is set), ``registry audits run-pending`` runs what is
queued and exits.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from typing import Protocol

from flask import Flask
from sqlalchemy.engine import Engine

from registry.audit_jobs import service
from registry.db import transaction
from registry.storage.files import LocalContentStore

log = logging.getLogger(__name__)
LEASE_SECONDS = 60.0  # the default of REGISTRY_AUDIT_LEASE_SECONDS


class JobQueue(Protocol):
    """Tells the workers that a job is waiting. The job row is already committed when this is called."""

    def enqueue(self, job_id: int) -> None: ...


class InProcessQueue:
    """The default backend: the pool polls the job table; ``enqueue`` just wakes it early."""

    def __init__(self) -> None:
        self.wake = threading.Event()

    def enqueue(self, job_id: int) -> None:
        self.wake.set()


class CeleryQueue:
    """``REGISTRY_BROKER_URL`` is set: ``enqueue`` sends the job's id to the Celery workers (``registry.jobs``).

    If the broker cannot be reached the job stays queued in the table (the request still succeeds) and the sweep
    that every worker runs when it starts, and Celery beat runs every minute, sends it later.
    """

    def __init__(self, settings) -> None:
        try:
            from registry.jobs import make_celery
        except ImportError as exc:  # celery is an optional extra
            raise RuntimeError(CELERY_MISSING) from exc
        self.celery = make_celery(settings)

    def enqueue(self, job_id: int) -> None:
        from registry.jobs import TASK_RUN

        try:
            self.celery.send_task(
                TASK_RUN,
                args=[job_id],
                retry=True,
                retry_policy={"max_retries": 2, "interval_start": 0, "interval_step": 0.5, "interval_max": 1},
            )
        except Exception:
            log.warning(
                "could not send audit job %s to the broker; the sweep will send it later", job_id, exc_info=True
            )


CELERY_MISSING = (
    "REGISTRY_BROKER_URL is set but Celery is not installed; install the extra: pip install -e '.[celery]'."
)


def queue_for(app: Flask) -> JobQueue:
    """The app's job queue (made once, by configuration). The job row is already committed when this is called,
    so a queue only wakes a worker: a job is never lost if nobody is listening."""
    queue = app.extensions.get("audit_queue")
    if queue is None:
        queue = CeleryQueue(app.config) if app.config.get("BROKER_URL") else InProcessQueue()
        app.extensions["audit_queue"] = queue
    return queue


def worker_name(suffix: str = "") -> str:
    """A name that tells which host, process and thread holds a job."""
    return f"{socket.gethostname()}:{os.getpid()}{':' + suffix if suffix else ''}"


def run_one(*, engine: Engine, content: LocalContentStore, worker: str, lease_seconds: float = LEASE_SECONDS) -> bool:
    """Claim one job and run it to its end; False when nothing was waiting."""
    with transaction(engine) as session:
        job = service.claim_next(session=session, worker=worker, lease_seconds=lease_seconds)
        job_id = job.id if job is not None else None
    if job_id is None:
        return False
    service.run_job(engine=engine, content=content, job_id=job_id, worker=worker, lease_seconds=lease_seconds)
    return True


def run_pending(*, engine: Engine, content: LocalContentStore, worker: str | None = None) -> int:
    """Run queued jobs (and lapsed ones) one after another in this thread until none is left; returns how many."""
    name = worker or worker_name("run-pending")
    count = 0
    while run_one(engine=engine, content=content, worker=name):
        count += 1
    return count


class InProcessWorker:
    """A bounded pool of threads, each looping claim_next → run_job, waking every ``poll_seconds`` or on enqueue.

    A job left running by a stopped process is picked up again once its lease lapses.
    """

    def __init__(
        self,
        app_or_engine: Flask | Engine,
        content: LocalContentStore | None = None,
        *,
        threads: int = 2,
        poll_seconds: float = 1.0,
        lease_seconds: float = LEASE_SECONDS,
        queue: InProcessQueue | None = None,
    ) -> None:
        if isinstance(app_or_engine, Flask):
            state = app_or_engine.extensions["registry"]
            self.engine, self.content = state.engine, content or state.content
            queue = queue or queue_for(app_or_engine)
            lease_seconds = float(app_or_engine.config.get("AUDIT_LEASE_SECONDS") or lease_seconds)
        else:
            self.engine, self.content = app_or_engine, content
        if self.content is None:
            raise ValueError("InProcessWorker needs the content store")
        if threads < 1:
            raise ValueError("threads must be at least 1")
        self.threads, self.poll_seconds, self.lease_seconds = threads, poll_seconds, lease_seconds
        self.queue = queue if isinstance(queue, InProcessQueue) else InProcessQueue()
        self._stop = threading.Event()
        self._pool: list[threading.Thread] = []

    def start(self) -> None:
        """Start the threads (once)."""
        if self._pool:
            return
        self._stop.clear()
        for i in range(self.threads):
            thread = threading.Thread(target=self._loop, args=(worker_name(f"t{i}"),), name=f"audit-worker-{i}")
            thread.daemon = True
            thread.start()
            self._pool.append(thread)

    def stop(self, timeout: float | None = None) -> None:
        """Ask the threads to stop after their current job, and wait for them."""
        self._stop.set()
        self.queue.wake.set()
        for thread in self._pool:
            thread.join(timeout)
        self._pool = []

    def _loop(self, name: str) -> None:
        while not self._stop.is_set():
            try:
                ran = run_one(engine=self.engine, content=self.content, worker=name, lease_seconds=self.lease_seconds)
            except Exception:  # the database may be briefly unavailable; the job table keeps the work
                log.exception("audit worker %s could not claim or run a job", name)
                ran = False
            if not ran:
                self.queue.wake.wait(self.poll_seconds)
                self.queue.wake.clear()
