"""Statistics of the public library: public filings by city, scenario, risk tier, state and decision outcome, and
decisions per month. No Flask here.

Counted by the database over ``library_search`` (:mod:`registry.library.search`): one narrow row per public
filing with exactly these columns, kept current in the same transaction as every lifecycle step — so the
statistics count what the library lists, and never read the filings' documents. One query, a GROUP BY per
dimension (UNION ALL), returns a few rows per city, scenario, tier, state, outcome and month, whatever the number
of filings. (Grouping by every combination at once returned one row per filing or so at 10,000 filings, spread
over months: 60 ms to fetch and sum, on every view of the statistics and the standings.)
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session, select

from registry.cities.models import City
from registry.decisions.models import Outcome
from registry.library.public import PUBLIC_STATE_VALUES
from registry.library.search import LibrarySearch

TIERS = ("I", "II", "III", "IV")
OUTCOMES = tuple(o.value for o in Outcome)


# The counts the statistics and the standings read: name → the columns counted together (the month is added by
# :func:`counts`). Each is one GROUP BY over ``library_search``: a few rows to a few hundred, whatever the number
# of filings (a month × outcome table grows by three rows a month).
DIMENSIONS: dict[str, tuple[str, ...]] = {
    "city": ("city_code",),
    "scenario": ("scenario",),
    "tier": ("risk_tier",),
    "state": ("state",),
    "outcome": ("outcome",),
    "month_outcome": ("month", "outcome"),
    "city_state": ("city_code", "state"),
}


def _month(session: Session, column) -> sa.ColumnElement[str]:
    """``YYYY-MM`` of a UTC timestamp column, on SQLite (naive UTC text) and PostgreSQL (timestamptz)."""
    if session.get_bind().dialect.name == "postgresql":
        return sa.func.to_char(sa.func.timezone("UTC", column), "YYYY-MM")
    return sa.func.strftime("%Y-%m", column)


def counts(session: Session, names: tuple[str, ...] = tuple(DIMENSIONS)) -> dict[str, Counter]:
    """The public filings counted along each dimension of ``names`` (:data:`DIMENSIONS`), in one query: a UNION ALL
    of one GROUP BY per dimension, each a pass over an index of the library's table. A one-column dimension counts
    by its value; a two-column one by the pair."""
    columns = {
        "city_code": LibrarySearch.city_code,
        "scenario": LibrarySearch.scenario,
        "risk_tier": LibrarySearch.risk_tier,
        "state": LibrarySearch.state,
        "outcome": LibrarySearch.outcome,
        "month": _month(session, LibrarySearch.decided_at),
    }
    parts = []
    for name in names:
        keys = [columns[c] for c in DIMENSIONS[name]]
        first = sa.cast(keys[0], sa.String)
        second = sa.cast(keys[1], sa.String) if len(keys) > 1 else sa.cast(sa.null(), sa.String)
        parts.append(
            # No WHERE on the state: the table holds public filings only (search.refresh), and a condition on a
            # column outside the index would read every row instead of the index.
            sa.select(sa.literal(name, sa.String).label("dimension"), first, second, sa.func.count()).group_by(*keys)
        )
    found: dict[str, Counter] = {name: Counter() for name in names}
    for name, first, second, count in session.execute(sa.union_all(*parts)):
        found[name][(first, second) if len(DIMENSIONS[name]) > 1 else first] += int(count)
    return found


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
    found = counts(session)
    per_city, per_scenario, per_tier = found["city"], found["scenario"], found["tier"]
    per_state, per_outcome = found["state"], found["outcome"]
    by_month: dict[str, Counter] = {}
    for (month, outcome), count in found["month_outcome"].items():
        if month is not None and outcome in OUTCOMES:
            by_month.setdefault(month, Counter())[outcome] += count
    per_month = []
    for key in _months_between(min(by_month), max(by_month)) if by_month else []:
        month_counts = {outcome: by_month.get(key, Counter())[outcome] for outcome in OUTCOMES}
        per_month.append({"month": key, **month_counts, "total": sum(month_counts.values())})
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
