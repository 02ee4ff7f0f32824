"""Audit jobs on Celery workers, so that audits scale out to more machines: ``celery -A registry.jobs worker``.

Set ``REGISTRY_BROKER_URL=redis://…`` for the web app and for every worker, with the same ``DATABASE_URL`` and the
same content store (``REGISTRY_INSTANCE`` on a shared volume). The durable job table stays the truth; a message only
says "job N is waiting":

- ``registry.run_audit_job(N)`` claims job N with the same conditional UPDATE as the in-process pool, so a job never
  runs twice at once, however many messages name it. If another worker holds a live lease, the task waits until that
  lease would lapse and looks again; if that worker died, the job is claimed again (an attempt counted) and runs to
  its end. No countdown/ETA messages are used.
  Messages are acknowledged late and rejected when their worker process is lost, so a killed worker's message is
  delivered again.
- ``registry.sweep_audit_jobs`` sends a message for every queued job the broker does not hold (the broker was down
  when it was queued) and for every running job whose worker died; each worker runs it when it starts, Celery beat
  every ``REGISTRY_SWEEP_SECONDS``.
- ``registry.reaudit_due`` is ``registry reaudit due`` for Celery beat, every ``REGISTRY_REAUDIT_EVERY_SECONDS``;
  ``registry.deliver_mail`` sends the e-mail outbox every 30 s when SMTP is configured.

Messages are JSON (never pickle); no result backend: results live in the job table.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from celery import Celery, signals

from registry import config as config_module

log = logging.getLogger(__name__)

TASK_RUN = "registry.run_audit_job"
TASK_SWEEP = "registry.sweep_audit_jobs"
TASK_REAUDIT = "registry.reaudit_due"
TASK_MAIL = "registry.deliver_mail"
NO_BROKER = (
    "REGISTRY_BROKER_URL is not set: Celery workers need the broker the web app uses, e.g. "
    "REGISTRY_BROKER_URL=redis://127.0.0.1:6379/0 (see the README, 'Running at scale')."
)


def settings_from_environment() -> dict[str, Any]:
    """The configuration a worker reads: the same defaults and ``REGISTRY_*`` variables as the web app."""
    settings = dict(config_module.DEFAULTS)
    settings.update(config_module.from_environment())
    return settings


def make_celery(settings: Mapping[str, Any]) -> Celery:
    """A Celery app for ``settings`` (the Flask app's config, or the environment's), with the registry's tasks."""
    broker = settings.get("BROKER_URL")
    if not broker:
        raise RuntimeError(NO_BROKER)
    celery = Celery("registry", broker=str(broker), set_as_current=False)
    queue = str(settings.get("CELERY_QUEUE") or "audits")
    celery.conf.update(
        task_default_queue=queue,
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        task_acks_late=True,  # a message is acknowledged when its audit ended, not when it started
        task_reject_on_worker_lost=True,  # … and given back to the broker when its worker process dies
        worker_prefetch_multiplier=1,  # audits are long: a worker holds one message at a time
        broker_connection_retry_on_startup=True,
        broker_transport_options={"visibility_timeout": int(settings.get("BROKER_VISIBILITY_SECONDS") or 3600)},
        enable_utc=True,
        timezone="UTC",
        beat_schedule={
            "sweep-audit-jobs": {"task": TASK_SWEEP, "schedule": float(settings.get("SWEEP_SECONDS") or 60)},
            "reaudit-due": {"task": TASK_REAUDIT, "schedule": float(settings.get("REAUDIT_EVERY_SECONDS") or 3600)},
            "deliver-mail": {"task": TASK_MAIL, "schedule": 30.0},
        },
    )
    celery.conf.registry_queue = queue
    _register_tasks(celery)
    return celery


# --- the worker's side -------------------------------------------------------------------------------------------

_flask_app = None


def _registry():
    """This worker process's registry (engine, content store, configuration), made on first use — after the
    prefork pool has forked, so no database connection crosses a fork."""
    global _flask_app
    if _flask_app is None:
        from registry import create_app

        _flask_app = create_app()
    return _flask_app


def _send_run(celery: Celery, job_id: int) -> None:
    celery.send_task(TASK_RUN, args=[job_id])


def _register_tasks(celery: Celery) -> None:
    @celery.task(name=TASK_RUN, bind=True)
    def run_audit_job(self, job_id: int) -> str:
        import time

        from registry.audit_jobs import service
        from registry.audit_jobs.models import JobState
        from registry.audit_jobs.worker import worker_name
        from registry.db import transaction, utcnow

        flask_app = _registry()
        state, lease = flask_app.extensions["registry"], float(flask_app.config["AUDIT_LEASE_SECONDS"])
        name = worker_name(f"celery:{self.request.hostname}")

        def claim():
            with transaction(state.engine) as session:
                return service.claim_job(session=session, job_id=job_id, worker=name, lease_seconds=lease)

        found = claim()
        if found.outcome == "busy":
            # Another worker holds a live lease. Wait here until it would lapse (at most one lease; no ETA message:
            # a held countdown is delivered late or not at all under late acks) and look once more: a worker that
            # died has stopped renewing it. One that still renews it is alive and finishes the job itself.
            time.sleep(min(lease + 1.0, max(0.5, (found.lease_until - utcnow()).total_seconds() + 0.5)))
            found = claim()
        if found.outcome != "claimed":
            return found.outcome
        try:
            job = service.run_job(
                engine=state.engine, content=state.content, job_id=job_id, worker=name, lease_seconds=lease
            )
        except Exception:  # e.g. the database went away while the result was written: the job is still ours
            log.exception("audit job %s: could not finish; sent again, claimed when its lease lapses", job_id)
            _send_run(self.app, job_id)
            return "error"
        if job is not None and job.state == JobState.QUEUED:  # an unexpected error put it back: send it again
            _send_run(self.app, job_id)
        return job.state if job is not None else "lost"

    @celery.task(name=TASK_SWEEP)
    def sweep_audit_jobs(include_running: bool = False) -> dict:
        return sweep(celery, _registry().extensions["registry"].engine, include_running=include_running)

    @celery.task(name=TASK_REAUDIT)
    def reaudit_due(now: str | None = None) -> dict:
        from registry.audit_jobs.periodic import reaudit_due as run_due
        from registry.db import utcnow

        when = datetime.fromisoformat(now).astimezone(UTC) if now else utcnow()
        run = run_due(_registry().extensions["registry"].engine, now=when)
        for job_id in run.job_ids:
            _send_run(celery, job_id)
        for line in run.lines:
            log.info("%s", line)
        log.info("%s", run.summary)
        return {"queued": run.job_ids, "expired": run.expired}

    @celery.task(name=TASK_MAIL)
    def deliver_mail() -> dict:
        """Send the e-mail outbox (nothing to do when SMTP is not configured)."""
        from registry.notifications.mailer import MailSettings, deliver_pending

        flask_app = _registry()
        settings = MailSettings.from_config(flask_app.config)
        if settings is None:
            return {"smtp": False}
        delivery = deliver_pending(flask_app.extensions["registry"].engine, settings)
        return {"smtp": True, "delivery": repr(delivery)}


def _broker_holds_messages(celery: Celery) -> bool:
    """True when the audit queue has messages waiting (or the broker cannot say)."""
    queue = celery.conf.registry_queue
    try:
        with celery.connection_for_read() as connection:
            _name, count, _consumers = connection.default_channel.queue_declare(queue=queue, passive=True)
            return count > 0
    except Exception as exc:  # kombu raises ChannelError for a queue that is empty and so does not exist
        if "NOT_FOUND" in str(exc) or "no queue" in str(exc).lower():
            return False
        log.warning("could not read the length of queue %s: %s", queue, exc)
        return True


def sweep(celery: Celery, engine, *, include_running: bool = False) -> dict:
    """Send a message for jobs that may have none: queued ones when the broker's queue is empty (or at a worker's
    start), running ones whose lease lapsed, and — at a worker's start — running ones whose lease is still live
    (their worker may have died with the rest), timed for when that lease lapses."""
    import sqlalchemy as sa

    from registry.audit_jobs.models import AuditJob, JobState
    from registry.db import utcnow

    job = AuditJob.__table__
    now = utcnow()
    with engine.connect() as connection:
        rows = connection.execute(
            sa.select(job.c.id, job.c.state, job.c.lease_until)
            .where(job.c.state.in_([JobState.QUEUED, JobState.RUNNING]))
            .order_by(job.c.id)
        ).all()
    send_queued = include_running or not _broker_holds_messages(celery)
    sent: dict[str, list[int]] = {"queued": [], "lapsed": [], "running": []}
    for row in rows:
        if row.state == JobState.QUEUED:
            if send_queued:
                _send_run(celery, row.id)
                sent["queued"].append(row.id)
        elif row.lease_until is None or row.lease_until < now:
            _send_run(celery, row.id)
            sent["lapsed"].append(row.id)
        elif include_running:
            _send_run(celery, row.id)  # its task waits for the lease to lapse, then claims it if nobody renewed it
            sent["running"].append(row.id)
    if any(sent.values()):
        log.info("audit sweep sent %s", sent)
    return sent


@signals.worker_ready.connect(weak=False)
def _sweep_when_a_worker_starts(sender=None, **_kwargs) -> None:
    """A worker that (re)starts picks up what a stopped one left: queued jobs and interrupted ones."""
    celery = getattr(sender, "app", None)
    if celery is not None and TASK_SWEEP in celery.tasks:
        celery.send_task(TASK_SWEEP, kwargs={"include_running": True})


def __getattr__(name: str):
    """``celery -A registry.jobs`` finds ``app`` here: made from the environment on first use."""
    if name in {"app", "celery"}:
        made = make_celery(settings_from_environment())
        globals()["app"] = globals()["celery"] = made
        return made
    raise AttributeError(name)
