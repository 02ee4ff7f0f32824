"""Load-test data: N realistic filings (default 10,000) in a registry database, for ``benchmarks/load.py``.

What it makes, in an empty, migrated database (SQLite or PostgreSQL) and its instance folder (stored files, keys):

1. Through the real services: the Henan demo (``registry demo load``: 6 cities, 9 accounts, 19 filings in every
   state), 14 more Henan cities (GB/T 2260) each with a city team, and one real audit — the demo's credit-pilot
   model run by the audit engine on the German credit reference data set — on which a real decision (proposed and
   countersigned) rests. That audit's stored report is the report of every generated audit below, whose jobs all
   audit that same stored model (content-addressed: one file, many filings).
2. In bulk (Core ``executemany`` with explicit ids; the service path, which validates each document and checks
   each ONNX model, is the slow part): N filings of the demo's eight technical documents spread over 20 cities,
   renamed per city and version, with their impact assessment scored by ``registry.filings.risk`` (tiers I–IV).
   About 85 % are public (approved, approved with conditions, rejected, suspended, revoked, expired, superseded —
   each superseded one with its newer version), the rest drafts, in review, sent back for changes or withdrawn.
   Each has its lifecycle trail (create, submit, start review, the decision…) with times over the last three
   years, its model attachment, its filing number from the per-city, per-year sequence, its decision row (two
   signatures on tiers III and IV) resting on a done audit, periodic re-audits on its tier's interval (a few
   overdue or failed, so that some cities are red), and its next re-audit date from ``audit_jobs.schedule``.
3. Every logged step (decisions, suspensions, revocations, expiries, supersessions), in time order, appended to
   the decision log through ``registry.decision_log.service.append`` — leaf, Merkle nodes and a signed
   checkpoint each, as the app does — so ``registry log verify`` verifies.
4. The library's search index rebuilt by ``registry.library.search.reindex`` (the code ``registry library
   reindex`` runs), and the planner's statistics refreshed (ANALYZE), as after any bulk load.

Usage:
  python benchmarks/generate_filings.py [--filings 10000] [--database URL] [--instance DIR] [--seed 0]
The database URL and instance folder default to the registry's configuration (REGISTRY_DATABASE_URL or
DATABASE_URL, REGISTRY_INSTANCE; else ./instance and its SQLite file). The decision log's signing key is
REGISTRY_LOG_SIGNING_KEY_FILE, else the instance's ``log-signing-key`` (made when missing). The database must
have no filings yet. Prints the counts and the time of each phase.
"""

from __future__ import annotations

import argparse
import copy
import os
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import sqlalchemy as sa
from sqlmodel import Session, select

from audits import policy as policies
from registry import create_app, demo, migrations
from registry.accounts import service as accounts
from registry.accounts.models import User
from registry.audit_jobs import schedule
from registry.audit_jobs import service as audit_jobs
from registry.audit_jobs.models import AuditJob, JobState
from registry.audit_jobs.worker import run_pending
from registry.cities import service as cities
from registry.cities.models import City
from registry.db import transaction
from registry.decision_log import keys as log_keys
from registry.decision_log import service as decision_log
from registry.decisions import service as decisions
from registry.decisions.models import Decision, DecisionState, Outcome
from registry.filings import numbers, risk
from registry.filings.lifecycle import Action, State
from registry.filings.models import Attachment, Comment, Filing, FilingNumberSequence, FilingTransition
from registry.library import search

MAX_FILINGS = 200_000
BATCH = 1000
PROVINCE = "豫"
DATASET = "german-credit"
# Henan's other prefecture-level cities (GB/T 2260), beside the demo's six.
MORE_CITIES = (
    ("410200", "开封市", "Kaifeng"),
    ("410400", "平顶山市", "Pingdingshan"),
    ("410600", "鹤壁市", "Hebi"),
    ("410700", "新乡市", "Xinxiang"),
    ("410800", "焦作市", "Jiaozuo"),
    ("410900", "濮阳市", "Puyang"),
    ("411100", "漯河市", "Luohe"),
    ("411200", "三门峡市", "Sanmenxia"),
    ("411300", "南阳市", "Nanyang"),
    ("411400", "商丘市", "Shangqiu"),
    ("411500", "信阳市", "Xinyang"),
    ("411600", "周口市", "Zhoukou"),
    ("411700", "驻马店市", "Zhumadian"),
    ("419001", "济源市", "Jiyuan"),
)
# How often each state occurs (about 85 % public). A superseded filing comes with its newer, approved version.
STATE_WEIGHTS = {
    "approved": 40,
    "approved_with_conditions": 15,
    "rejected": 9,
    "suspended": 3,
    "revoked": 3,
    "expired": 3,
    "superseded": 6,
    "draft": 4,
    "submitted": 3,
    "under_review": 4,
    "changes_requested": 4,
    "resubmitted": 2,
    "withdrawn": 1,
}
CONDITIONS = (
    "每季度报送分组准确率。Report per-group accuracy every quarter.",
    "上线后六个月内完成第三方复测。A third-party retest within six months of going live.",
    "不利决定须经人工复核。Every adverse decision is reviewed by a person.",
)
REASONS = (
    "女性申请人的通过率低于男性的 80%。Selection rate for women is below 80% of men's.",
    "测试报告所称准确率与独立测试结果不符。The claimed accuracy does not match the independent test.",
    "缺少申诉渠道说明。No appeal channel is described.",
)
AFTER_DECISION_REASONS = {
    Action.SUSPEND: "复审发现数据漂移，暂停使用。Re-audit found data drift.",
    Action.REVOKE: "该算法已停止使用。The algorithm is no longer in use.",
    Action.EXPIRE: "复审逾期超过宽限期。Re-audit overdue beyond the grace period.",
}


@dataclass
class Ids:
    """The next free id of each table written in bulk (ids are given explicitly, then the sequences moved)."""

    filing: int
    transition: int
    decision: int
    job: int
    attachment: int
    comment: int


@dataclass
class Plan:
    """Every row to insert, as dicts of column values, and the logged steps to append in time order."""

    filings: list[dict] = field(default_factory=list)
    transitions: list[dict] = field(default_factory=list)
    decisions: list[dict] = field(default_factory=list)
    jobs: list[dict] = field(default_factory=list)
    attachments: list[dict] = field(default_factory=list)
    comments: list[dict] = field(default_factory=list)
    logged: list[tuple[datetime, int, int, int | None]] = field(default_factory=list)  # at, filing, step, decision
    states: Counter = field(default_factory=Counter)


@dataclass(frozen=True)
class Seed:
    """What the service-made part gives the bulk part: accounts, the stored model and the real audit report."""

    city_users: dict[str, int]
    reviewers: tuple[int, int]
    model_sha256: str
    model_size: int
    reports: dict[bool, str]  # meets the policy → the stored report of a real audit with that verdict
    sensitive_attributes: list


# --- arguments and the app ------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--filings", "-n", type=int, default=10_000, help="how many filings to make (default 10000)")
    parser.add_argument("--database", default=None, help="database URL (default: the registry's configuration)")
    parser.add_argument("--instance", default=None, help="instance folder (default: REGISTRY_INSTANCE or ./instance)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (the same seed makes the same data)")
    parser.add_argument("--replicates", type=int, default=200, help="bootstrap replicates of the one real audit")
    args = parser.parse_args(argv)
    if not 0 <= args.filings <= MAX_FILINGS:
        parser.error(f"--filings is from 0 to {MAX_FILINGS}")
    if not 0 <= args.replicates <= 1000:
        parser.error("--replicates is from 0 to 1000")
    return args


def make_app(database: str | None, instance: str | None):
    """The registry app for this database and instance; the log's signing key is made in the instance if none is
    configured (as demo mode does)."""
    overrides: dict = {}
    if database:
        overrides["DATABASE_URL"] = database
    if instance:
        overrides["INSTANCE_PATH"] = instance
    app = create_app(overrides)
    if not app.config.get("LOG_SIGNING_KEY_FILE"):
        path = Path(app.config["INSTANCE_PATH"]) / log_keys.DEMO_KEY_FILE
        if not path.exists():
            log_keys.write_new_key(path, log_keys.default_origin(str(app.config["PROVINCE_CODE"])))
    return app


# --- 1. through the services ----------------------------------------------------------------------------------------


def _real_audit(engine, content, *, filing_id: int, replicates: int, outcome: str, conditions=(), reasons=()):
    """Audit the filing's model for real (queued, run by the worker code), then decide on it (countersigned when
    its tier needs it). Returns the done job's verdict, report and sensitive attributes."""
    with transaction(engine) as session:
        reviewer = accounts.actor_for(accounts.get_user_by_name(session=session, username="reviewer1"))
        job_id = audit_jobs.start_audit(
            session=session, actor=reviewer, filing_id=filing_id, dataset=DATASET, replicates=replicates
        ).id
    run_pending(engine=engine, content=content)
    with transaction(engine) as session:
        job = session.get(AuditJob, job_id)
        if job.state != JobState.DONE:
            raise SystemExit(f"The seed audit did not finish: {job.state} {job.error}")
        done = SimpleNamespace(
            verdict=job.verdict, report_sha256=job.report_sha256, sensitive_attributes=list(job.sensitive_attributes)
        )
        proposer = accounts.actor_for(accounts.get_user_by_name(session=session, username="reviewer1"))
        second = accounts.actor_for(accounts.get_user_by_name(session=session, username="reviewer2"))
        decision = decisions.propose(
            session=session,
            actor=proposer,
            filing_id=filing_id,
            outcome=outcome,
            conditions=list(conditions),
            reasons=list(reasons),
            audit_job_ids=[job_id],
            province=PROVINCE,
        )
        if decision.state == DecisionState.PROPOSED:
            decisions.countersign(session=session, actor=second, decision_id=decision.id, province=PROVINCE)
    return done


def seed_with_services(app, *, replicates: int) -> Seed:
    """The demo, the extra cities and their teams, and two real audits of the demo's credit-pilot model on German
    credit — as filed (tier IV: it does not meet that tier's policy, and is rejected) and filed again as a tier I
    use (it meets that policy, and is approved) — each with a real decision resting on it."""
    state = app.extensions["registry"]
    engine, content = state.engine, state.content
    with transaction(engine) as session:
        if session.exec(select(Filing.id).limit(1)).first() is not None:
            raise SystemExit("The database already has filings; generate into an empty one.")
        demo.load(session=session, content=content)
        password_hash = session.exec(select(User.password_hash).where(User.username == "zhengzhou")).one()
        for code, name_zh, name_en in MORE_CITIES:
            cities.add_city(session=session, code=code, name_zh=name_zh, name_en=name_en, province_code="410000")
            # One argon2 hash for all (the demo's password): hashing 14 more would only cost time.
            session.add(
                User(
                    username=f"city{code}",
                    display_name=f"{name_zh}大数据管理局 {name_en} city team",
                    role="city",
                    city_code=code,
                    password_hash=password_hash,
                )
            )
        pilot_id = session.exec(
            select(Filing.id).where(Filing.state == State.UNDER_REVIEW, Filing.algorithm_version == "0.9.0")
        ).one()
        technical, reports = demo.documents()
        document, report = demo.credit_pilot(technical[1], reports[1])
        document["algorithm"]["version"] = "0.9.1"
        document["impact_assessment"] = copy.deepcopy(technical[3]["impact_assessment"])  # a tier I use
        low_risk_id = demo.file_to_state(
            session=session,
            content=content,
            city_user="luoyang",
            reviewer_user="reviewer1",
            technical_document=document,
            test_report=report,
            state="under_review",
            model_bytes=demo.credit_model_bytes(),
        ).id
    fails = _real_audit(
        engine, content, filing_id=pilot_id, replicates=replicates, outcome=Outcome.REJECTED, reasons=[REASONS[1]]
    )
    meets = _real_audit(engine, content, filing_id=low_risk_id, replicates=replicates, outcome=Outcome.APPROVED)
    if (fails.verdict, meets.verdict) != (policies.DOES_NOT_MEET, policies.MEETS):
        raise SystemExit(f"Unexpected verdicts of the seed audits: {fails.verdict}, {meets.verdict}")
    with Session(engine) as session:
        users = {u.city_code: u.id for u in session.exec(select(User).where(User.role == "city"))}
        reviewers = tuple(
            session.exec(select(User.id).where(User.username == name)).one() for name in ("reviewer1", "reviewer2")
        )
        model = session.exec(select(Attachment).where(Attachment.filing_id == pilot_id)).one()
        return Seed(
            city_users=users,
            reviewers=reviewers,  # type: ignore[arg-type]
            model_sha256=model.sha256,
            model_size=model.size,
            reports={True: meets.report_sha256, False: fails.report_sha256},
            sensitive_attributes=list(meets.sensitive_attributes),
        )


# --- 2. the plan, then the bulk insert ------------------------------------------------------------------------------


def _next_ids(session: Session) -> Ids:
    def after(column) -> int:
        return int(session.exec(sa.select(sa.func.coalesce(sa.func.max(column), 0))).one()[0]) + 1

    return Ids(
        filing=after(Filing.id),
        transition=after(FilingTransition.id),
        decision=after(Decision.id),
        job=after(AuditJob.id),
        attachment=after(Attachment.id),
        comment=after(Comment.id),
    )


def _renamed(document: dict, city: City, version: str, ordinal: int) -> dict:
    """The template document as filed by ``city``: its city, department and name in the city's words."""
    document = copy.deepcopy(document)
    algorithm = document["algorithm"]
    base_zh, base_en = algorithm["name_zh"], algorithm["name_en"]
    suffix_zh, suffix_en = ("", "") if ordinal == 0 else (f"（{ordinal + 1}号）", f" No. {ordinal + 1}")
    algorithm.update(
        name_zh=f"{city.name_zh}{base_zh}{suffix_zh}", name_en=f"{city.name_en} {base_en}{suffix_en}", version=version
    )
    department = document.get("department") or ""
    for old in ("郑州市", "洛阳市", "安阳市", "许昌市", "林州市", "兰考县"):
        department = department.replace(old, city.name_zh)
    document["department"] = department
    document["city_code"] = city.code
    return document


class Planner:
    """Draws filings and writes down their rows; times go forward from each filing's creation to at most now."""

    def __init__(self, *, rng: random.Random, ids: Ids, seed: Seed, cities_: list[City], sequences: dict, now):
        self.rng, self.ids, self.seed, self.now = rng, ids, seed, now
        self.cities = cities_
        # Zhengzhou and Luoyang file more (as the demo has it); every city files something.
        demo_cities = {code for code, _zh, _en in cities.HENAN}
        self.city_weights = [
            6 if c.code in ("410100", "410300") else 3 if c.code in demo_cities else 2 for c in cities_
        ]
        self.sequences = sequences  # (city, year) -> last number issued
        self.templates, self.reports = demo.documents()
        self.assessments = [risk.assess(t["impact_assessment"]["answers"]) for t in self.templates]
        self.policy = policies.load()
        self.plan = Plan()
        self.names = Counter()
        self.red_cities = {c.code for c in rng.sample(cities_, k=max(1, len(cities_) // 5))}

    # ids
    def _take(self, name: str) -> int:
        value = getattr(self.ids, name)
        setattr(self.ids, name, value + 1)
        return value

    def _step(
        self, filing: dict, action: str, source: str | None, target: str, at: datetime, who: str, reason: str = ""
    ) -> int:
        actor_id = {"city": filing["created_by_id"], "reviewer": self.seed.reviewers[0], "system": None}[who]
        step_id = self._take("transition")
        self.plan.transitions.append(
            {
                "id": step_id,
                "filing_id": filing["id"],
                "action": action,
                "from_state": source,
                "to_state": target,
                "actor_id": actor_id,
                "actor_role": who,
                "reason": reason,
                "at": at,
            }
        )
        filing["state"], filing["updated_at"] = target, at
        filing["revision"] += 1
        return step_id

    def _later(self, at: datetime, low_hours: float, high_hours: float) -> datetime:
        return min(self.now, at + timedelta(hours=self.rng.uniform(low_hours, high_hours)))

    def _number(self, city_code: str, at: datetime) -> str:
        key = (city_code, at.year)
        self.sequences[key] = self.sequences.get(key, 0) + 1
        return numbers.format_number(PROVINCE, city_code, at.year, self.sequences[key])

    def _job(self, filing: dict, at: datetime, *, reason: str, state: str = JobState.DONE, meets: bool = True) -> dict:
        done = state == JobState.DONE
        job = {
            "id": self._take("job"),
            "filing_id": filing["id"],
            "state": state,
            "dataset": DATASET,
            "sensitive_attributes": list(self.seed.sensitive_attributes),
            "tier": filing["risk_tier"],
            "model_sha256": self.seed.model_sha256,
            "seed": 0,
            "replicates": 200,
            "requested_by_id": self.seed.reviewers[0] if reason == "review" else None,
            "reason": reason,
            "progress": 1.0,
            "attempts": 1,
            "max_attempts": 3,
            "worker": "generate_filings",
            "lease_until": None,
            "error": None if done else "The model process ended without an answer (generated failure).",
            "report_sha256": self.seed.reports[meets] if done else None,
            "verdict": (policies.MEETS if meets else policies.DOES_NOT_MEET) if done else None,
            "created_at": at - timedelta(minutes=30),
            "started_at": at - timedelta(minutes=29),
            "finished_at": at,
        }
        self.plan.jobs.append(job)
        return job

    def add(
        self,
        state: str,
        *,
        template: int | None = None,
        city: City | None = None,
        supersedes: dict | None = None,
        created: datetime | None = None,
    ) -> dict:
        rng = self.rng
        template = rng.randrange(len(self.templates)) if template is None else template
        city = city or rng.choices(self.cities, weights=self.city_weights)[0]
        ordinal = self.names[(template, city.code)]
        self.names[(template, city.code)] += 1
        version = "1.0.0" if supersedes is None else supersedes["_next_version"]
        if supersedes is not None:
            ordinal = supersedes["_ordinal"]
        document = _renamed(self.templates[template], city, version, ordinal)
        assessment = self.assessments[template]
        created = created or self.now - timedelta(days=rng.uniform(15, 3 * 365))
        filing = {
            "id": self._take("filing"),
            "city_code": city.code,
            "state": State.DRAFT.value,
            "algorithm_name_zh": document["algorithm"]["name_zh"],
            "algorithm_name_en": document["algorithm"]["name_en"],
            "algorithm_version": version,
            "scenario": document.get("scenario"),
            "risk_tier": assessment.tier,
            "filing_number": None,
            "supersedes_id": supersedes["id"] if supersedes is not None else None,
            "technical_document": document,
            "test_report": copy.deepcopy(self.reports[template]),
            "risk_assessment": assessment.to_json(),
            "model_sha256": self.seed.model_sha256,
            "created_by_id": self.seed.city_users[city.code],
            "created_at": created,
            "updated_at": created,
            "submitted_at": None,
            "decided_at": None,
            "next_audit_due": None,
            "revision": 1,
            "_ordinal": ordinal,
            "_next_version": f"{int(version.split('.')[0]) + 1}.0.0",
        }
        self.plan.filings.append(filing)
        self.plan.attachments.append(
            {
                "id": self._take("attachment"),
                "filing_id": filing["id"],
                "kind": "model",
                "sha256": self.seed.model_sha256,
                "filename": "model.onnx",
                "size": self.seed.model_size,
                "created_by_id": filing["created_by_id"],
                "created_at": created + timedelta(minutes=5),
            }
        )
        self._step(filing, "create", None, State.DRAFT, created, "city")
        self.plan.states[state] += 1
        if state == "draft":
            return filing
        if state == "withdrawn":
            self._step(
                filing,
                Action.WITHDRAW,
                State.DRAFT,
                State.WITHDRAWN,
                self._later(created, 1, 48),
                "city",
                "重复提交。Filed twice by mistake.",
            )
            return filing
        at = self._later(created, 2, 24 * 10)
        filing["submitted_at"] = at
        self._step(filing, Action.SUBMIT, State.DRAFT, State.SUBMITTED, at, "city")
        if state == "submitted":
            return filing
        at = self._later(at, 2, 24 * 5)
        self._step(filing, Action.START_REVIEW, State.SUBMITTED, State.UNDER_REVIEW, at, "reviewer")
        if state in ("changes_requested", "resubmitted"):
            reason = "测试报告缺少按户籍类型分组的结果，请补充。Please add results by residence type."
            # Some requests have gone unanswered for more than 30 days (a yellow light for the city).
            at = self.now - timedelta(days=rng.uniform(1, 90)) if state == "changes_requested" else at
            at = max(at, filing["updated_at"])
            self._step(
                filing, Action.REQUEST_CHANGES, State.UNDER_REVIEW, State.CHANGES_REQUESTED, at, "reviewer", reason
            )
            self.plan.comments.append(
                {
                    "id": self._take("comment"),
                    "filing_id": filing["id"],
                    "author_id": self.seed.reviewers[0],
                    "author_role": "reviewer",
                    "body": reason,
                    "reviewer_only": False,
                    "created_at": at,
                }
            )
            if state == "resubmitted":
                at = self._later(at, 24, 24 * 20)
                filing["submitted_at"] = at
                self._step(filing, Action.RESUBMIT, State.CHANGES_REQUESTED, State.RESUBMITTED, at, "city")
            return filing
        if state == "under_review":
            return filing
        self._decide(filing, state, at)
        return filing

    def _decide(self, filing: dict, state: str, at: datetime) -> None:
        rng = self.rng
        audit_at = self._later(at, 1, 24 * 7)
        job = self._job(filing, audit_at, reason="review", meets=state != "rejected")
        outcome = {"rejected": Outcome.REJECTED, "approved_with_conditions": Outcome.APPROVED_WITH_CONDITIONS}.get(
            state, Outcome.APPROVED
        )
        proposed = self._later(audit_at, 1, 24 * 3)
        two = filing["risk_tier"] in ("III", "IV")
        decided = self._later(proposed, 1, 24 * 2) if two else proposed
        if decided >= self.now:
            decided = proposed = self.now - timedelta(minutes=rng.uniform(5, 60))
        decision = {
            "id": self._take("decision"),
            "filing_id": filing["id"],
            "outcome": outcome.value,
            "state": DecisionState.EFFECTIVE.value,
            "conditions": [rng.choice(CONDITIONS)] if outcome == Outcome.APPROVED_WITH_CONDITIONS else [],
            "reasons": [rng.choice(REASONS)] if outcome == Outcome.REJECTED else [],
            "audit_job_ids": [job["id"]],
            "audit_report_sha256": [job["report_sha256"]],
            "tier": filing["risk_tier"],
            "proposed_by_id": self.seed.reviewers[0],
            "proposed_at": proposed,
            "countersigned_by_id": self.seed.reviewers[1] if two else None,
            "countersigned_at": decided if two else None,
            "effective_at": decided,
            "withdrawn_by_id": None,
            "withdrawn_at": None,
            "filing_number": None,
            "note": "",
        }
        self.plan.decisions.append(decision)
        action = {
            Outcome.APPROVED: Action.APPROVE,
            Outcome.APPROVED_WITH_CONDITIONS: Action.APPROVE_WITH_CONDITIONS,
            Outcome.REJECTED: Action.REJECT,
        }[outcome]
        lines = decision["conditions"] + decision["reasons"]
        reason = f"decision {decision['id']}" + (": " + "; ".join(lines) if lines else "")
        target = outcome.value
        if outcome != Outcome.REJECTED:
            filing["decided_at"] = decided
            filing["filing_number"] = self._number(filing["city_code"], decided)
            decision["filing_number"] = filing["filing_number"]
        step = self._step(filing, action, State.UNDER_REVIEW, target, decided, "reviewer", reason[:4000])
        # The reviewer who made it take effect: the countersigner on tiers III and IV.
        self.plan.transitions[-1]["actor_id"] = decision["countersigned_by_id"] or decision["proposed_by_id"]
        self.plan.logged.append((decided, filing["id"], step, decision["id"]))
        if outcome == Outcome.REJECTED:
            return
        self._reaudits(filing, decided)
        after = {"suspended": Action.SUSPEND, "revoked": Action.REVOKE, "expired": Action.EXPIRE}.get(state)
        if after is not None:
            at = self._later(decided, 24 * 30, 24 * 400)
            if after == Action.EXPIRE and filing["next_audit_due"] is not None:
                at = max(at, min(self.now, filing["next_audit_due"] + timedelta(days=31)))
            target = {Action.SUSPEND: State.SUSPENDED, Action.REVOKE: State.REVOKED, Action.EXPIRE: State.EXPIRED}[
                after
            ]
            who = "system" if after == Action.EXPIRE else "reviewer"
            step = self._step(filing, after, filing["state"], target, at, who, AFTER_DECISION_REASONS[after])
            self.plan.logged.append((at, filing["id"], step, None))
            filing["next_audit_due"] = None
        elif state == "superseded":
            newer = self.add(
                "approved",
                template=self._template_of(filing),
                city=next(c for c in self.cities if c.code == filing["city_code"]),
                supersedes=filing,
                created=self._later(decided, 24 * 20, 24 * 300),
            )
            self.plan.states["approved"] -= 1  # counted as the superseded one's successor, below
            self.plan.states["approved (newer version)"] += 1
            at = newer["decided_at"] or self.now
            step = self._step(
                filing,
                Action.SUPERSEDE,
                filing["state"],
                State.SUPERSEDED,
                at,
                "system",
                f"superseded by filing {newer['id']}",
            )
            self.plan.logged.append((at + timedelta(microseconds=1), filing["id"], step, None))
            filing["next_audit_due"] = None

    def _template_of(self, filing: dict) -> int:
        names = [t["algorithm"]["name_zh"] for t in self.templates]
        return next(i for i, n in enumerate(names) if n in filing["algorithm_name_zh"])

    def _reaudits(self, filing: dict, decided: datetime) -> None:
        """Re-audits on the tier's interval up to now; the next due date from the last. In the red cities, a few
        filings have an overdue re-audit, or a latest re-audit that failed."""
        tier = filing["risk_tier"]
        last = decided
        due = schedule.next_due(decided_at=decided, tier=tier, policy=self.policy)
        red = filing["city_code"] in self.red_cities and self.rng.random() < 0.01
        while due is not None and due < self.now:
            if red and schedule.next_due(decided_at=due, tier=tier, policy=self.policy) >= self.now:
                kind = self.rng.choice(("overdue", "failed", "does_not_meet"))
                if kind == "failed":
                    self._job(filing, due + timedelta(hours=2), reason="reaudit", state=JobState.FAILED)
                elif kind == "does_not_meet":
                    self._job(filing, due + timedelta(hours=2), reason="reaudit", meets=False)
                break  # overdue: the last one has not run
            last = due + timedelta(hours=self.rng.uniform(1, 72))
            if last >= self.now:
                break
            self._job(filing, last, reason="reaudit")
            due = schedule.next_due(decided_at=last, tier=tier, policy=self.policy)
        filing["next_audit_due"] = due


def plan_filings(session: Session, *, count: int, seed: Seed, rng: random.Random, now: datetime) -> Plan:
    sequences = {(s.city_code, s.year): s.last for s in session.exec(select(FilingNumberSequence))}
    planner = Planner(
        rng=rng,
        ids=_next_ids(session),
        seed=seed,
        cities_=list(session.exec(select(City).order_by(City.code))),
        sequences=sequences,
        now=now,
    )
    states, weights = list(STATE_WEIGHTS), list(STATE_WEIGHTS.values())
    while len(planner.plan.filings) < count:
        state = rng.choices(states, weights=weights)[0]
        if state == "superseded" and len(planner.plan.filings) + 2 > count:
            state = "approved"
        planner.add(state)
    planner.plan.sequences = planner.sequences  # type: ignore[attr-defined]
    return planner.plan


def _chunks(rows: list[dict], size: int = BATCH):
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def insert_plan(engine, plan: Plan) -> None:
    """Insert every planned row (one transaction), then move the id sequences past them on PostgreSQL."""
    tables = (
        (Filing.__table__, [{k: v for k, v in f.items() if not k.startswith("_")} for f in plan.filings]),
        (Attachment.__table__, plan.attachments),
        (FilingTransition.__table__, plan.transitions),
        (AuditJob.__table__, plan.jobs),
        (Decision.__table__, plan.decisions),
        (Comment.__table__, plan.comments),
    )
    with transaction(engine) as session:
        connection = session.connection()
        # A superseding filing points at an older one: insert filings oldest id first (their order in the plan).
        for table, rows in tables:
            for chunk in _chunks(sorted(rows, key=lambda r: r["id"])):
                connection.execute(sa.insert(table), chunk)
        sequence = FilingNumberSequence.__table__
        for (city, year), last in plan.sequences.items():  # type: ignore[attr-defined]
            updated = connection.execute(
                sa.update(sequence).where(sequence.c.city_code == city, sequence.c.year == year).values(last=last)
            )
            if updated.rowcount == 0:
                connection.execute(sa.insert(sequence).values(city_code=city, year=year, last=last))
        if engine.dialect.name == "postgresql":
            for table, _rows in tables:
                name = table.name
                connection.execute(
                    sa.text(
                        f"SELECT setval(pg_get_serial_sequence('\"{name}\"', 'id'), (SELECT max(id) FROM \"{name}\"))"
                    )
                )


# --- 3. the decision log ---------------------------------------------------------------------------------------------


def append_to_log(engine, keys, plan: Plan) -> int:
    """Append every logged step through the log's own service, oldest first, a transaction per batch."""
    filings = {f["id"]: f for f in plan.filings}
    steps = {t["id"]: t for t in plan.transitions}
    decided = {d["id"]: d for d in plan.decisions}
    ordered = sorted(plan.logged, key=lambda item: (item[0], item[2]))
    appended = 0
    for start in range(0, len(ordered), BATCH):
        with transaction(engine) as session:
            for _at, filing_id, step_id, decision_id in ordered[start : start + BATCH]:
                decision_log.append(
                    session,
                    keys=keys,
                    filing=SimpleNamespace(**filings[filing_id]),
                    transition=SimpleNamespace(**steps[step_id]),
                    decision=SimpleNamespace(**decided[decision_id]) if decision_id is not None else None,
                )
                appended += 1
    return appended


# --- 4. the index and the planner's statistics ----------------------------------------------------------------------


def build_index(engine) -> int:
    with transaction(engine) as session:
        count = search.reindex(session)
    with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            connection.execution_options(isolation_level="AUTOCOMMIT").execute(sa.text("ANALYZE"))
        else:
            connection.execute(sa.text("ANALYZE"))
            connection.commit()
    return count


def generate(app, *, count: int, seed: int = 0, replicates: int = 200, out=sys.stdout) -> dict:
    """Fill the app's (empty) database; returns the counts and the seconds each phase took."""
    engine = app.extensions["registry"].engine
    timings: dict[str, float] = {}
    started = time.perf_counter()
    migrations.upgrade(engine)
    service_seed = seed_with_services(app, replicates=replicates)
    timings["services (demo, cities, two real audits and decisions)"] = time.perf_counter() - started

    mark = time.perf_counter()
    rng = random.Random(seed)
    with Session(engine) as session:
        plan = plan_filings(session, count=count, seed=service_seed, rng=rng, now=datetime.now(UTC))
    insert_plan(engine, plan)
    timings[f"bulk insert ({count} filings)"] = time.perf_counter() - mark

    mark = time.perf_counter()
    appended = append_to_log(engine, log_keys.load(app.config), plan)
    timings[f"decision log ({appended} appends through the service)"] = time.perf_counter() - mark

    mark = time.perf_counter()
    indexed = build_index(engine)
    timings[f"library index ({indexed} public filings) and ANALYZE"] = time.perf_counter() - mark
    timings["total"] = time.perf_counter() - started

    with Session(engine) as session:
        totals = {
            "filings": session.exec(sa.select(sa.func.count()).select_from(Filing)).one()[0],
            "public filings": indexed,
            "transitions": session.exec(sa.select(sa.func.count()).select_from(FilingTransition)).one()[0],
            "decisions": session.exec(sa.select(sa.func.count()).select_from(Decision)).one()[0],
            "audit jobs": session.exec(sa.select(sa.func.count()).select_from(AuditJob)).one()[0],
            "decision log entries": decision_log.tree_size(session),
            "cities": session.exec(sa.select(sa.func.count()).select_from(City)).one()[0],
        }
    print(f"Generated into {engine.url.render_as_string(hide_password=True)}", file=out)
    for name, value in totals.items():
        print(f"  {name:>22}: {value}", file=out)
    print("  generated states: " + ", ".join(f"{k} {v}" for k, v in sorted(plan.states.items())), file=out)
    for name, seconds in timings.items():
        print(f"  {seconds:8.1f} s  {name}", file=out)
    print("Check the log with: registry log verify (same REGISTRY_* settings)", file=out)
    return {"counts": totals, "timings": timings}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    app = make_app(args.database, args.instance)
    try:
        generate(app, count=args.filings, seed=args.seed, replicates=args.replicates)
    finally:
        app.extensions["registry"].engine.dispose()
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
