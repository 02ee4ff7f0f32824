"""City standings (红黄绿灯): each city green, yellow or red, by rules printed on the public page. No Flask here.

The rules (:data:`RULES`, shown on ``/library/standings`` and in ``GET /api/v1/library/standings`` as they are
written here):

- **red** (红灯): an algorithm in force in the city (approved, or approved with conditions) whose periodic
  re-audit is overdue (its next re-audit date has passed), or whose latest re-audit failed or did not meet the
  audit policy (the same queries as the reviewers' re-audit page: ``registry.audit_jobs.schedule``);
- **yellow** (黄灯): otherwise, a filing the province sent back for changes that the city has not answered for
  :data:`UNANSWERED_DAYS` days (in ``changes_requested``, its last lifecycle step that long ago), or an algorithm
  in force whose re-audit falls due within :data:`DUE_SOON_DAYS` days;
- **green** (绿灯): none of these.

Counts only for filings that are not public (a draft or a filing in review is never named); the algorithms in
force behind a red light are public, and are named.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import aliased
from sqlmodel import Session, select

from audits import policy as policies
from registry.audit_jobs import schedule
from registry.audit_jobs.models import AuditJob, JobState
from registry.cities.models import City
from registry.filings import lifecycle
from registry.filings.lifecycle import State
from registry.filings.models import Filing, FilingTransition
from registry.library import statistics

RED, YELLOW, GREEN = "red", "yellow", "green"
COLOURS = (RED, YELLOW, GREEN)
UNANSWERED_DAYS = 30
DUE_SOON_DAYS = 30
IN_FORCE = tuple(sorted(s.value for s in lifecycle.DECIDED))

# The rules as printed on the page and in the API, in both languages: the one text of them.
RULES = (
    {
        "colour": RED,
        "zh": "红灯：本市至少有一个在用算法（准予备案或附条件准予备案）复审逾期（下次复审日期已过），"
        "或其最近一次复审失败或未达到审计政策要求。",
        "en": "Red: at least one algorithm in force in the city (approved, or approved with conditions) is overdue "
        "for its re-audit (the next re-audit date has passed), or its latest re-audit failed or did not meet "
        "the audit policy.",
    },
    {
        "colour": YELLOW,
        "zh": f"黄灯：不属于红灯，但有省级要求修改的备案超过 {UNANSWERED_DAYS} 天未答复，"
        f"或有在用算法将在 {DUE_SOON_DAYS} 天内到期复审。",
        "en": f"Yellow: not red, but a filing the province sent back for changes has gone unanswered for "
        f"{UNANSWERED_DAYS} days or more, or an algorithm in force is due for re-audit within {DUE_SOON_DAYS} days.",
    },
    {"colour": GREEN, "zh": "绿灯：以上情况均不存在。", "en": "Green: none of the above."},
)

# What each count means (the page's table headers and the API's documentation use the same keys).
COUNTS = (
    "public_filings",  # filings a decision has been taken on (the public library)
    "in_force",  # approved or approved with conditions
    "reaudit_overdue",  # in force, next re-audit date passed                         → red
    "reaudit_failed",  # in force, latest re-audit failed or did not meet the policy  → red
    "changes_unanswered",  # in changes_requested for UNANSWERED_DAYS days or more       → yellow
    "reaudit_due_soon",  # in force, re-audit due within DUE_SOON_DAYS days             → yellow
)


@dataclass
class CityStanding:
    code: str
    name_zh: str
    name_en: str
    colour: str = GREEN
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTS, 0))
    # The public algorithms behind a red light: {"filing_number", "name_zh", "name_en", "due"}.
    overdue: list[dict] = field(default_factory=list)
    failed: list[dict] = field(default_factory=list)

    def to_json(self) -> dict:
        return {
            "city": {"code": self.code, "name_zh": self.name_zh, "name_en": self.name_en},
            "colour": self.colour,
            "counts": dict(self.counts),
            "reaudit_overdue_filings": list(self.overdue),
            "reaudit_failed_filings": list(self.failed),
        }


def colour(counts: dict[str, int]) -> str:
    """The light the rules give a city with these counts."""
    if counts["reaudit_overdue"] or counts["reaudit_failed"]:
        return RED
    if counts["changes_unanswered"] or counts["reaudit_due_soon"]:
        return YELLOW
    return GREEN


def _named(number, name_zh, name_en, due) -> dict:
    return {
        "filing_number": number,
        "name_zh": name_zh,
        "name_en": name_en,
        "next_audit_due": due.isoformat() if due is not None else None,
    }


def standings(*, session: Session, now: datetime) -> list[CityStanding]:
    """Every city of the registry with its light and the counts behind it, in city-code order. Four queries,
    whatever the number of filings: the library's counts per city, the in-force filings due within the horizon
    (on the index of the due date), the failed re-audits, and the unanswered requests for changes."""
    by_city = {
        c.code: CityStanding(code=c.code, name_zh=c.name_zh, name_en=c.name_en)
        for c in session.exec(select(City).order_by(City.code))
    }
    for (code, state), count in statistics.counts(session, ("city_state",))["city_state"].items():
        if code in by_city:
            counts = by_city[code].counts
            counts["public_filings"] += count
            if state in IN_FORCE:
                counts["in_force"] += count

    due = Filing.next_audit_due
    # Only the due date in SQL, so that the database reads its index and the few filings it names; the state (a
    # filing in force) is checked here, over those few rows.
    due_rows = session.exec(
        select(
            Filing.city_code,
            Filing.state,
            Filing.filing_number,
            Filing.algorithm_name_zh,
            Filing.algorithm_name_en,
            due,
        )
        .where(due.is_not(None), due <= now + timedelta(days=DUE_SOON_DAYS))
        .order_by(due, Filing.id)
    ).all()
    for code, state, number, name_zh, name_en, when in due_rows:
        if code not in by_city or state not in IN_FORCE:
            continue
        standing = by_city[code]
        if when < now:
            standing.counts["reaudit_overdue"] += 1
            standing.overdue.append(_named(number, name_zh, name_en, when))
        else:
            standing.counts["reaudit_due_soon"] += 1

    # The failed or non-compliant re-audits that are their filing's latest re-audit: from the few such jobs, each
    # checked against a newer re-audit of its filing on the filing's index (the newest re-audit of every filing,
    # grouped first, read the whole job table: 30 ms at 10,000 filings).
    newer = aliased(AuditJob)
    failed_rows = session.exec(
        select(Filing.city_code, Filing.filing_number, Filing.algorithm_name_zh, Filing.algorithm_name_en, due)
        .join(AuditJob, AuditJob.filing_id == Filing.id)
        .where(
            AuditJob.reason == schedule.REAUDIT,
            sa.or_(
                AuditJob.state == JobState.FAILED,
                sa.and_(AuditJob.state == JobState.DONE, AuditJob.verdict == policies.DOES_NOT_MEET),
            ),
            Filing.state.in_(IN_FORCE),
            ~sa.exists().where(
                newer.filing_id == AuditJob.filing_id, newer.reason == schedule.REAUDIT, newer.id > AuditJob.id
            ),
        )
        .order_by(Filing.city_code, Filing.filing_number)
    ).all()
    for code, number, name_zh, name_en, when in failed_rows:
        if code in by_city:
            by_city[code].failed.append(_named(number, name_zh, name_en, when))
            by_city[code].counts["reaudit_failed"] += 1

    # A filing sent back for changes whose latest step (the request) is older than the cut-off: counts only.
    last_step = (
        select(sa.func.max(FilingTransition.at))
        .where(FilingTransition.filing_id == Filing.id)
        .correlate(Filing)
        .scalar_subquery()
    )
    unanswered_rows = session.exec(
        select(Filing.city_code, sa.func.count())
        .where(Filing.state == State.CHANGES_REQUESTED.value, last_step <= now - timedelta(days=UNANSWERED_DAYS))
        .group_by(Filing.city_code)
    ).all()
    for code, count in unanswered_rows:
        if code in by_city:
            by_city[code].counts["changes_unanswered"] = int(count)

    for standing in by_city.values():
        standing.colour = colour(standing.counts)
    return list(by_city.values())


def next_change(*, session: Session, now: datetime) -> datetime | None:
    """The first moment after ``now`` at which a light may change by the time that passes alone, with nothing
    filed or decided (None: never): a re-audit date passing (red), coming within :data:`DUE_SOON_DAYS` days
    (yellow), or a request for changes reaching :data:`UNANSWERED_DAYS` days (yellow). Any filing's dates count,
    in force or not: an earlier moment than needed only makes the standings be counted again sooner. Three reads
    of indexes and of the few filings sent back."""
    due = Filing.next_audit_due
    soon = timedelta(days=DUE_SOON_DAYS)
    # A filing is overdue once its date has passed (not at the instant itself): that instant counts, or a page made
    # at it would hold past it.
    overdue_at = session.exec(select(sa.func.min(due)).where(due >= now)).one()
    due_soon_at = session.exec(select(sa.func.min(due)).where(due > now + soon)).one()
    last_step = (
        select(sa.func.max(FilingTransition.at))
        .where(FilingTransition.filing_id == Filing.id)
        .correlate(Filing)
        .scalar_subquery()
    )
    asked = session.exec(select(last_step).where(Filing.state == State.CHANGES_REQUESTED.value)).all()
    unanswered = [at + timedelta(days=UNANSWERED_DAYS) for at in asked if at is not None]
    moments = [
        overdue_at,
        due_soon_at - soon if due_soon_at is not None else None,
        *(moment for moment in unanswered if moment > now),
    ]
    return min((m for m in moments if m is not None), default=None)


def totals(items: list[CityStanding]) -> dict[str, int]:
    """How many cities have each light."""
    return {c: sum(1 for s in items if s.colour == c) for c in COLOURS}
