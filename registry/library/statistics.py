"""Statistics of the public library: public filings by city, scenario, risk tier, state and decision outcome, and
decisions per month. No Flask here.

Counted by the database in one GROUP BY over ``library_search`` (:mod:`registry.library.search`): one narrow row
per public filing with exactly these columns, kept current in the same transaction as every lifecycle step — so
the statistics count what the library lists, and never read the filings' documents. The database returns one row
per combination of city, scenario, tier, state, outcome and month (a few hundred, whatever the number of
filings); each dimension is then the sum of its combinations.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session, select

from registry.cities.models import City
from registry.decisions.models import Outcome
from registry.library.public import PUBLIC_STATE_VALUES
from registry.library.search import LibrarySearch

TIERS = ("I", "II", "III", "IV")
OUTCOMES = tuple(o.value for o in Outcome)


@dataclass(frozen=True)
class Group:
    """How many public filings share these values (``month``: of the decision, UTC, ``YYYY-MM``)."""

    city_code: str
    scenario: str | None
    risk_tier: str | None
    state: str
    outcome: str | None
    month: str | None
    count: int


def _month(session: Session, column) -> sa.ColumnElement[str]:
    """``YYYY-MM`` of a UTC timestamp column, on SQLite (naive UTC text) and PostgreSQL (timestamptz)."""
    if session.get_bind().dialect.name == "postgresql":
        return sa.func.to_char(sa.func.timezone("UTC", column), "YYYY-MM")
    return sa.func.strftime("%Y-%m", column)


def groups(session: Session) -> list[Group]:
    """The public filings counted by city, scenario, tier, state, decision outcome and month of the decision: one
    query, one pass over the library's index table."""
    month = _month(session, LibrarySearch.decided_at)
    keys = (
        LibrarySearch.city_code,
        LibrarySearch.scenario,
        LibrarySearch.risk_tier,
        LibrarySearch.state,
        LibrarySearch.outcome,
        month,
    )
    rows = session.exec(
        select(*keys, sa.func.count()).where(LibrarySearch.state.in_(PUBLIC_STATE_VALUES)).group_by(*keys)
    ).all()
    return [Group(*row[:-1], count=int(row[-1])) for row in rows]


def _sums(found: list[Group], key: str) -> Counter:
    totals: Counter = Counter()
    for group in found:
        totals[getattr(group, key)] += group.count
    return totals


def _months_between(first: str, last: str) -> list[str]:
    year, month = int(first[:4]), int(first[5:7])
    months = []
    while f"{year:04d}-{month:02d}" <= last:
        months.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return months


def statistics(*, session: Session, now: datetime) -> dict:
    """The library's statistics as of ``now``: each dimension a list of ``{key, count}`` rows in a stable order
    (every city, tier, state and outcome listed, zero or not; the scenarios that occur), and the decisions per
    calendar month (UTC) by outcome, the months between the first and the last filled in."""
    found = groups(session)
    per_city, per_scenario = _sums(found, "city_code"), _sums(found, "scenario")
    per_tier, per_state, per_outcome = _sums(found, "risk_tier"), _sums(found, "state"), _sums(found, "outcome")
    by_month: dict[str, Counter] = {}
    for group in found:
        if group.month is not None and group.outcome in OUTCOMES:
            by_month.setdefault(group.month, Counter())[group.outcome] += group.count
    per_month = []
    for key in _months_between(min(by_month), max(by_month)) if by_month else []:
        counts = {outcome: by_month.get(key, Counter())[outcome] for outcome in OUTCOMES}
        per_month.append({"month": key, **counts, "total": sum(counts.values())})
    cities = session.exec(select(City).order_by(City.code)).all()
    return {
        "as_of": now.isoformat(),
        "public_filings": sum(per_state.values()),
        "by_city": [
            {"code": c.code, "name_zh": c.name_zh, "name_en": c.name_en, "count": per_city[c.code]} for c in cities
        ],
        "by_scenario": [
            {"scenario": key, "count": count}
            for key, count in sorted(per_scenario.items(), key=lambda kv: (kv[0] is None, kv[0] or ""))
        ],
        "by_tier": [{"tier": tier, "count": per_tier[tier]} for tier in TIERS]
        + ([{"tier": None, "count": per_tier[None]}] if per_tier[None] else []),
        "by_state": [{"state": state, "count": per_state[state]} for state in PUBLIC_STATE_VALUES],
        "by_decision": [{"outcome": outcome, "count": per_outcome[outcome]} for outcome in OUTCOMES],
        "decisions_by_month": per_month,
    }
