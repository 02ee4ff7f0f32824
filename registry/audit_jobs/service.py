"""Use cases for audit jobs: start, list and read audits; claim and run them (for the workers). No Flask here.

A reviewer's request becomes a row of the durable job table (``queued``). A worker claims it with a conditional
UPDATE (``… WHERE id = :id AND state = :expected``), so two workers never run the same job at once on SQLite or
PostgreSQL, and holds a lease it keeps extending while the audit runs. A job whose lease lapses (the worker died
or the process restarted) is claimed again, counting an attempt, until ``max_attempts``. A fault of the model
fails the job at once (running it again would give the same answer); anything unexpected puts it back in the queue.
"""

from __future__ import annotations

import io
import json
import logging
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from audits import engine as audit_engine
from audits import policy as policies
from audits import reference
from audits.model_check import ModelRejected, check_model_file
from audits.runner import Limits, ModelRunError
from registry import authz
from registry.accounts.models import Role
from registry.audit_jobs import schedule
from registry.audit_jobs.models import AuditJob, JobState
from registry.authz import Actor
from registry.db import transaction, utcnow
from registry.errors import Conflict, Forbidden, NotFound, Unprocessable, ValidationFailed
from registry.filings import lifecycle
from registry.filings.models import Filing
from registry.reference_data import service as reference_data
from registry.storage import service as storage
from registry.storage.files import LocalContentStore
from schemas.validation import FieldError

log = logging.getLogger(__name__)

DEFAULT_TIER = "III"  # a filing whose tier is not assessed is audited as high risk
AUDITABLE = lifecycle.IN_REVIEW | lifecycle.DECIDED  # in review, or decided (a re-audit)
MAX_REPLICATES = 10_000
MAX_REPORT_BYTES = 64 * 1024 * 1024
# Faults of the model itself: the same model fails the same way again, so the job fails without a retry.
MODEL_FAULTS = frozenset({"rejected", "input_mismatch", "timeout", "memory", "bad_output"})
JOB = AuditJob.__table__


# --- reviewers and city teams --------------------------------------------------------------------------------------


def reference_datasets(session: Session) -> list[dict]:
    """The reference data sets reviewers choose from: the engine's shipped library and the active uploads, each as
    name, description, rows, sensitive attributes and default ones.

    Never a row of data. Shipped descriptors that do not validate and retired uploads are left out.
    """
    keys = ("name", "description", "rows", "sensitive_attributes", "default_sensitive")
    return [{k: d[k] for k in keys} for d in reference_data.all_datasets(session)]


def _require_reviewer(actor: Actor) -> None:
    if actor.role != Role.REVIEWER:
        raise Forbidden("Only provincial reviewers start audits.", code="reviewers_only")


def _check_request(session, dataset, sensitive_attributes, seed, replicates) -> tuple[dict, list[str]]:
    """The chosen data set's summary and attributes. Raises Unprocessable / ValidationFailed naming each field."""
    library = {d["name"]: d for d in reference_datasets(session)}
    if not isinstance(dataset, str) or dataset not in library:
        raise Unprocessable(
            f"Unknown reference data set {dataset!r}; use one of {', '.join(sorted(library)) or 'none'}.",
            code="unknown_dataset",
            pointer="/dataset",
        )
    chosen = library[dataset]
    if sensitive_attributes is None:
        attributes = list(chosen["default_sensitive"])
    elif not isinstance(sensitive_attributes, list) or not sensitive_attributes:
        raise Unprocessable(
            "sensitive_attributes is a non-empty list of the data set's sensitive attributes.",
            code="bad_field",
            pointer="/sensitive_attributes",
        )
    else:
        known = chosen["sensitive_attributes"]
        errors = [
            FieldError(
                f"/sensitive_attributes/{i}",
                "enum",
                f"{value!r} is not a sensitive attribute of {dataset}; use {', '.join(known)}.",
                f"{value!r} 不是数据集 {dataset} 的敏感属性；可选：{'、'.join(known)}。",
            )
            for i, value in enumerate(sensitive_attributes)
            if not isinstance(value, str) or value not in known
        ]
        errors += [
            FieldError(f"/sensitive_attributes/{i}", "uniqueItems", "Listed twice.", "重复列出。")
            for i, value in enumerate(sensitive_attributes)
            if value in sensitive_attributes[:i]
        ]
        if errors:
            raise ValidationFailed(
                "The sensitive attributes are not the data set's.", code="bad_attributes", errors=errors
            )
        attributes = list(sensitive_attributes)
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**31:
        raise Unprocessable("seed is an integer from 0 to 2^31 - 1.", code="bad_field", pointer="/seed")
    if replicates is not None and (
        isinstance(replicates, bool) or not isinstance(replicates, int) or not 0 <= replicates <= MAX_REPLICATES
    ):
        raise Unprocessable(
            f"replicates is an integer from 0 to {MAX_REPLICATES}.", code="bad_field", pointer="/replicates"
        )
    return chosen, attributes


def start_audit(
    *,
    session: Session,
    actor: Actor,
    filing_id: int,
    dataset: str,
    sensitive_attributes: list[str] | None = None,
    seed: int = 0,
    replicates: int | None = None,
    reason: str = "review",
) -> AuditJob:
    """Queue an audit of a filing's model on a reference data set; returns the new job (state ``queued``).

    Raises Forbidden (not a reviewer), NotFound (no such filing for the actor), Conflict (the filing is not in
    review or decided, or has no model), Unprocessable / ValidationFailed (data set, attributes, seed, replicates,
    each named by JSON Pointer).
    """
    _require_reviewer(actor)
    filing = authz.require_read_filing(actor, session.get(Filing, filing_id))
    if filing.state not in AUDITABLE:
        raise Conflict(
            f"A filing that is {filing.state} cannot be audited; audits run on filings in review or decided.",
            code="not_auditable",
            extra={"current_state": filing.state},
        )
    if filing.model_sha256 is None:
        raise Conflict("The filing has no model to audit.", code="no_model")
    _chosen, attributes = _check_request(session, dataset, sensitive_attributes, seed, replicates)
    if filing.state in lifecycle.DECIDED:
        reason = schedule.REAUDIT  # an audit of a decided filing is a re-audit: its outcome moves the schedule
    job = AuditJob(
        filing_id=filing.id,
        state=JobState.QUEUED,
        dataset=dataset,
        sensitive_attributes=attributes,
        tier=filing.risk_tier if filing.risk_tier in policies.TIERS else DEFAULT_TIER,
        model_sha256=filing.model_sha256,
        seed=seed,
        replicates=policies.load().replicates if replicates is None else replicates,
        requested_by_id=actor.user_id,
        reason=reason,
    )
    session.add(job)
    session.flush()
    return job


def list_jobs(*, session: Session, actor: Actor, filing_id: int) -> list[AuditJob]:
    """The audits of a filing the actor may read, newest first. Raises NotFound (unknown, or not theirs to see)."""
    filing = authz.require_read_filing(actor, session.get(Filing, filing_id))
    return list(session.exec(select(AuditJob).where(AuditJob.filing_id == filing.id).order_by(AuditJob.id.desc())))


def get_job(*, session: Session, actor: Actor, job_id: int) -> AuditJob:
    """One audit, if the actor may read its filing (a city team its own city's). Raises NotFound otherwise."""
    job = session.get(AuditJob, job_id)
    filing = session.get(Filing, job.filing_id) if job is not None else None
    if job is None or filing is None or not authz.can_read_filing(actor, filing):
        raise NotFound("No such audit.", code="audit_not_found")
    return job


def report(*, session: Session, content: LocalContentStore, actor: Actor, job_id: int) -> dict:
    """The stored audit report (schemas/audit-report.json) of a finished audit.

    Raises NotFound (as get_job) or Conflict (the audit is not done: queued, running or failed).
    """
    job = get_job(session=session, actor=actor, job_id=job_id)
    if job.state != JobState.DONE or job.report_sha256 is None:
        raise Conflict(
            f"The audit is {job.state}; its report exists once it is done.",
            code="audit_not_done",
            extra={"current_state": job.state},
        )
    with content.open(job.report_sha256) as handle:
        return json.loads(handle.read().decode("utf-8"))


# --- workers -------------------------------------------------------------------------------------------------------


def _move(session: Session, job_id: int, expected: dict, values: dict) -> bool:
    """UPDATE one job only if it is still as ``expected``; True when this caller won."""
    conditions = [JOB.c.id == job_id] + [JOB.c[name] == value for name, value in expected.items()]
    result = session.execute(sa.update(JOB).where(*conditions).values(**values))
    return result.rowcount == 1


def _claim(session: Session, row, worker: str, lease_seconds: float, now) -> AuditJob | None:
    """Try to move one candidate row (queued, or running with a lapsed lease) to ``running`` for ``worker``.

    A lapsed job that already used ``max_attempts`` is failed instead, with the reason. None when another worker
    won the row first, or it was failed here.
    """
    expected = {"state": row.state, "attempts": row.attempts}
    if row.state == JobState.RUNNING and row.attempts >= row.max_attempts:
        failed = _move(
            session,
            row.id,
            expected,
            {
                "state": JobState.FAILED,
                "error": f"The audit was interrupted {row.attempts} times (its worker stopped before it "
                f"finished); it is not tried again.",
                "finished_at": now,
                "lease_until": None,
            },
        )
        if failed:  # like any other end of a job: the schedule and the people waiting for it hear of it
            schedule.on_job_finished(session=session, job_id=row.id, now=now)
        return None
    won = _move(
        session,
        row.id,
        expected,
        {
            "state": JobState.RUNNING,
            "worker": worker,
            "attempts": row.attempts + 1,
            "lease_until": now + timedelta(seconds=lease_seconds),
            "started_at": now,
            "progress": 0.0,
            "error": None,
        },
    )
    if not won:
        return None
    session.flush()
    job = session.get(AuditJob, row.id)
    session.refresh(job)
    return job


_CANDIDATE_COLUMNS = (JOB.c.id, JOB.c.state, JOB.c.attempts, JOB.c.max_attempts, JOB.c.lease_until)


def claim_next(*, session: Session, worker: str, lease_seconds: float) -> AuditJob | None:
    """Move ONE job to ``running`` for ``worker`` and return it, or None when there is nothing to run.

    Candidates are queued jobs and running jobs whose lease lapsed (their worker is gone), oldest first. A lapsed
    job counts an attempt; one that already used ``max_attempts`` is failed instead, with the reason. The move is
    a conditional UPDATE, so of two workers claiming at once exactly one wins. The caller commits.
    """
    now = utcnow()
    candidates = session.execute(
        sa.select(*_CANDIDATE_COLUMNS)
        .where(
            sa.or_(
                JOB.c.state == JobState.QUEUED,
                sa.and_(JOB.c.state == JobState.RUNNING, JOB.c.lease_until < now),
            )
        )
        .order_by(JOB.c.id)
        .limit(20)
    ).all()
    for row in candidates:
        job = _claim(session, row, worker, lease_seconds, now)
        if job is not None:
            return job
    return None


class Claim(NamedTuple):
    """What :func:`claim_job` found: ``claimed`` (``job`` is now this worker's), ``busy`` (another worker holds a
    live lease until ``lease_until``) or ``ended`` (done, failed or gone: nothing to do)."""

    outcome: str
    job: AuditJob | None = None
    lease_until: datetime | None = None


def claim_job(*, session: Session, job_id: int, worker: str, lease_seconds: float) -> Claim:
    """Claim one named job (a Celery message carries its id), under the same rules as :func:`claim_next`.

    The caller commits.
    """
    now = utcnow()
    row = session.execute(sa.select(*_CANDIDATE_COLUMNS).where(JOB.c.id == job_id)).first()
    if row is None or row.state not in (JobState.QUEUED, JobState.RUNNING):
        return Claim("ended")
    if row.state == JobState.RUNNING and row.lease_until is not None and row.lease_until >= now:
        return Claim("busy", lease_until=row.lease_until)
    job = _claim(session, row, worker, lease_seconds, now)
    if job is not None:
        return Claim("claimed", job=job)
    after = session.execute(sa.select(*_CANDIDATE_COLUMNS).where(JOB.c.id == job_id)).first()
    if after is not None and after.state == JobState.RUNNING:
        return Claim("busy", lease_until=after.lease_until)
    return Claim("ended")


def _input_order(model_path: Path, technical_document: dict, max_bytes: int) -> list[str] | None:
    """The technical document's input names, in order, when the model takes one tensor (one column per input
    needs no order: inputs are matched to columns by name)."""
    try:
        summary = check_model_file(model_path, max_bytes=max_bytes)
    except ModelRejected:
        return None  # run_audit refuses it with the reason
    if len(summary.inputs) != 1:
        return None
    names = [i.get("name") for i in ((technical_document or {}).get("model") or {}).get("inputs") or []]
    return [n for n in names if isinstance(n, str)] or None


class _Lease:
    """Keeps a running job's lease alive (and its progress current) in short transactions of their own."""

    def __init__(self, engine: Engine, job_id: int, worker: str, lease_seconds: float) -> None:
        self.engine, self.job_id, self.worker, self.lease_seconds = engine, job_id, worker, lease_seconds
        self.progress = 0.0
        self._written = (-1.0, 0.0)  # progress and monotonic time of the last write
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"audit-lease-{job_id}", daemon=True)

    def __enter__(self) -> _Lease:
        self._thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self._stop.set()
        self._thread.join()

    def write(self) -> bool:
        values = {"lease_until": utcnow() + timedelta(seconds=self.lease_seconds), "progress": self.progress}
        with transaction(self.engine) as session:
            kept = _move(session, self.job_id, {"state": JobState.RUNNING, "worker": self.worker}, values)
        self._written = (self.progress, time.monotonic())
        return kept

    def report(self, stage: str, done: int, total: int) -> None:
        """The engine's progress callback: inference, then the explainability step's one model run, then figures."""
        start, width = (0.70, 0.25) if stage == "explainability" else (0.05, 0.65)
        if total > 0:
            self.progress = round(min(0.95, start + width * done / total), 4)
        last_progress, last_time = self._written
        if self.progress - last_progress >= 0.05 or time.monotonic() - last_time >= 2.0:
            self.write()

    def _beat(self) -> None:
        while not self._stop.wait(max(0.5, self.lease_seconds / 3)):
            try:
                self.write()
            except Exception:  # a missed beat only shortens the lease; the next one may succeed
                log.exception("could not extend the lease of audit job %s", self.job_id)


def run_job(
    *,
    engine: Engine,
    content: LocalContentStore,
    job_id: int,
    worker: str,
    lease_seconds: float = 60.0,
    limits: Limits | None = None,
) -> AuditJob | None:
    """Run one job this worker has claimed, to ``done`` (report stored) or ``failed`` (error kept).

    A fault of the model (refused, inputs that do not fit, too slow, too large, unreadable output) fails the job
    without retry. Any other exception puts it back in the queue while attempts remain, else fails it. Returns
    the job as it ends, or None when this worker no longer holds it (its lease lapsed and another took it).
    """
    with transaction(engine) as session:
        job = session.get(AuditJob, job_id)
        if job is None or job.state != JobState.RUNNING or job.worker != worker:
            return None
        filing = session.get(Filing, job.filing_id)
        model_path = content.path(job.model_sha256)
        claimed = filing.test_report
        technical_document = filing.technical_document
        request = dict(
            dataset=job.dataset,
            tier=job.tier,
            sensitive=list(job.sensitive_attributes),
            seed=job.seed,
            replicates=job.replicates,
            filing_id=job.filing_id,
        )
        attempts, max_attempts = job.attempts, job.max_attempts
    running = {"state": JobState.RUNNING, "worker": worker}
    try:
        with _Lease(engine, job_id, worker, lease_seconds) as lease:
            lease.progress = 0.02
            lease.write()
            data = reference_data.load_for_audit(engine, content, request["dataset"])
            limits = limits or Limits()
            result = audit_engine.run_audit(
                model_path=model_path,
                data=data,
                policy=policies.load(),
                tier=request["tier"],
                sensitive=request["sensitive"],
                claimed=claimed,
                replicates=request["replicates"],
                seed=request["seed"],
                input_order=_input_order(model_path, technical_document, limits.max_model_bytes),
                filing_id=request["filing_id"],
                progress=lease.report,
                limits=limits,
                technical_document=technical_document,
            )
    except (audit_engine.AuditError, policies.PolicyError, reference.DatasetError) as exc:
        return _finish_failed(engine, job_id, running, str(exc))
    except ModelRunError as exc:
        if exc.code in MODEL_FAULTS:
            return _finish_failed(engine, job_id, running, f"{exc.message} ({exc.code})")
        return _retry_or_fail(engine, job_id, running, f"{exc.message} ({exc.code})", attempts, max_attempts)
    except Exception as exc:
        log.exception("audit job %s failed unexpectedly", job_id)
        return _retry_or_fail(engine, job_id, running, f"{type(exc).__name__}: {exc}", attempts, max_attempts)

    body = json.dumps(result, ensure_ascii=False, indent=1).encode("utf-8")
    with transaction(engine) as session:
        stored = storage.store(
            session=session,
            content=content,
            stream=io.BytesIO(body),
            media_type="application/json",
            max_bytes=MAX_REPORT_BYTES,
        )
        now = utcnow()
        done = _move(
            session,
            job_id,
            running,
            {
                "state": JobState.DONE,
                "progress": 1.0,
                "report_sha256": stored.sha256,
                "verdict": result.get("verdict"),
                "finished_at": now,
                "lease_until": None,
                "error": None,
            },
        )
        if not done:
            session.rollback()
            return None
        schedule.on_job_finished(session=session, job_id=job_id, now=now)
    return _reload(engine, job_id)


def _reload(engine: Engine, job_id: int) -> AuditJob | None:
    with Session(engine, expire_on_commit=False) as session:
        return session.get(AuditJob, job_id)


def _finish_failed(engine: Engine, job_id: int, running: dict, error: str) -> AuditJob | None:
    with transaction(engine) as session:
        values = {"state": JobState.FAILED, "error": error[:4000], "finished_at": utcnow(), "lease_until": None}
        if not _move(session, job_id, running, values):
            return None
        schedule.on_job_finished(session=session, job_id=job_id)
    return _reload(engine, job_id)


def _retry_or_fail(
    engine: Engine, job_id: int, running: dict, error: str, attempts: int, max_attempts: int
) -> AuditJob | None:
    if attempts >= max_attempts:
        return _finish_failed(engine, job_id, running, f"Failed {attempts} times; the last error: {error}")
    with transaction(engine) as session:
        values = {"state": JobState.QUEUED, "error": error[:4000], "worker": None, "lease_until": None}
        if not _move(session, job_id, running, values):
            return None
    return _reload(engine, job_id)
