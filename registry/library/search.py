"""The public library's search index and its one query: full-text search, filters, sorting and pages. No Flask here.

Chinese has no spaces between words, so the index holds normalised tokens, not words: for every run of CJK
characters its overlapping character bigrams (医疗保障 → 医疗 疗保 保障) and its single characters, and for other
text its NFKC, lower-cased words. A query is tokenised the same way: a run of two or more CJK characters must
appear as that chain of bigrams (a phrase), a single character as itself, a word as the start of a word; all terms
must match. So 医保 and 低保 find exactly the names and purposes that contain them.

One row per public filing in ``library_search`` (migration 0008), kept current by :func:`refresh` in the same
transaction as every lifecycle step; a filing that is not public has no row, so the list can only show what
:mod:`registry.library.public` allows. SQLite searches an FTS5 index of the tokens (external content, kept in step
by triggers) ranked by bm25; PostgreSQL a GIN index on a stored ``to_tsvector('simple', tokens)`` ranked by ts_rank.
"""

from __future__ import annotations

import contextlib
import math
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.orm import defer
from sqlmodel import Field, Session, SQLModel, select

from registry.cities.models import City
from registry.db import UTCDateTime
from registry.decisions.models import Outcome
from registry.filings import risk
from registry.filings.lifecycle import DECISION_ACTIONS
from registry.filings.models import Filing, FilingTransition
from registry.library import public

# --- the index table -----------------------------------------------------------------------------------------------


class LibrarySearch(SQLModel, table=True):
    """One public filing as the library lists it: its search tokens and every column the list filters or sorts
    on (copied from the filing and its decision, which do not change once public, except the state), so that a
    page of 10,000 filings is counted and ordered on this table's indexes alone."""

    __tablename__ = "library_search"
    # Covering indexes of the statistics' and standings' counts (migration 0011).
    __table_args__ = (
        sa.Index("ix_library_search_city_code_state", "city_code", "state"),
        sa.Index("ix_library_search_decided_at_outcome", "decided_at", "outcome"),
    )

    filing_id: int = Field(foreign_key="filing.id", primary_key=True, sa_column_kwargs={"autoincrement": False})
    tokens: str = Field(sa_type=sa.Text)
    state: str = Field(max_length=32, index=True)
    city_code: str = Field(max_length=6, index=True)
    scenario: str | None = Field(default=None, max_length=40, index=True)
    risk_tier: str | None = Field(default=None, max_length=3, index=True)
    outcome: str | None = Field(default=None, max_length=32, index=True)
    decided_at: datetime | None = Field(default=None, sa_type=UTCDateTime, index=True)
    name_zh: str = Field(default="", max_length=200, index=True)
    name_en: str = Field(default="", max_length=200, index=True)


# The full-text index, made per database by migration 0008 and declared by no model (migrations/env.py leaves it
# out of `alembic check`). SQLite: an FTS5 table over library_search.tokens (and its shadow tables). PostgreSQL: a
# stored generated column to_tsvector('simple', tokens), so that neither matching nor ranking parses the tokens
# again, and its GIN index.
FTS_TABLE = "library_search_fts"
TSVECTOR_COLUMN = "search_vector"
TSVECTOR_INDEX = "ix_library_search_search_vector"


def migration_only(name: str, kind: str) -> bool:
    """Whether the database object ``name`` of ``kind`` (table, column, index…) is part of that full-text index."""
    return (kind == "table" and name.startswith(FTS_TABLE)) or (kind, name) in {
        ("column", TSVECTOR_COLUMN),
        ("index", TSVECTOR_INDEX),
    }


# --- tokens --------------------------------------------------------------------------------------------------------

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\U00020000-\U0003134f"
_RUNS = re.compile(rf"[{_CJK}]+|[^\W_{_CJK}]+")
_IS_CJK = re.compile(rf"[{_CJK}]")

MAX_QUERY_CHARS = 200
MAX_TERMS = 16

# The scenario's label in both languages, as the pages show it (tests/test_library.py checks them against the
# catalog), so that 资格认定 or "credit evaluation" finds the filings of that scenario.
SCENARIO_LABELS = {
    "eligibility_determination": ("Eligibility determination", "资格认定"),
    "credit_evaluation": ("Credit evaluation", "信用评价"),
    "licence_approval": ("Licence approval", "许可审批"),
    "benefit_or_claim_review": ("Benefit or claim review", "待遇或报销审核"),
    "inspection_targeting": ("Inspection targeting", "检查对象选取"),
    "other": ("Other", "其他"),
}


def _runs(text: str | None) -> Iterable[tuple[bool, str]]:
    """(is CJK, run) for each run of CJK characters or of other letters and digits, normalised (NFKC, lower)."""
    normal = unicodedata.normalize("NFKC", text or "").lower()
    for match in _RUNS.finditer(normal):
        run = match.group()
        yield bool(_IS_CJK.match(run)), run


def tokens(text: str | None) -> list[str]:
    """The index tokens of ``text``: each CJK run as its overlapping bigrams, in order (so that a longer query is a
    phrase of them), then its characters one by one (so that a one-character query is an exact token too); other
    words as they are."""
    out: list[str] = []
    for cjk, run in _runs(text):
        if cjk:
            out.extend(run[i : i + 2] for i in range(len(run) - 1))
            out.extend(run)
        else:
            out.append(run)
    return out


@dataclass(frozen=True)
class Term:
    """One term of a query: a phrase of bigrams (a CJK run), one CJK character, or the start of a word."""

    tokens: tuple[str, ...]
    prefix: bool


def query_terms(text: str | None) -> list[Term]:
    """The terms of a search box's text, at most MAX_TERMS, all of which must match."""
    terms: list[Term] = []
    for cjk, run in _runs((text or "")[:MAX_QUERY_CHARS]):
        if cjk:
            term = Term(tuple(run[i : i + 2] for i in range(len(run) - 1)) or (run,), prefix=False)
        else:
            term = Term((run,), prefix=True)
        if term not in terms:
            terms.append(term)
    return terms[:MAX_TERMS]


def _fts5_query(terms: list[Term]) -> str:
    def quoted(token: str) -> str:
        return '"' + token.replace('"', '""') + '"'

    return " AND ".join((quoted(t.tokens[0]) + "*") if t.prefix else quoted(" ".join(t.tokens)) for t in terms)


def _tsquery(terms: list[Term]) -> str:
    def quoted(token: str) -> str:
        return "'" + token.replace("'", "''").replace("\\", "\\\\") + "'"

    parts = []
    for t in terms:
        if t.prefix:
            parts.append(quoted(t.tokens[0]) + ":*")
        else:
            parts.append("(" + " <-> ".join(quoted(token) for token in t.tokens) + ")")
    return " & ".join(parts)


def document_text(filing: Filing, city: City | None) -> list[str]:
    """The public texts a filing is found by: its names (twice, so that a match in the name ranks first), purpose,
    city, department, scenario in both languages, and filing number."""
    document = filing.technical_document or {}
    names = [filing.algorithm_name_zh, filing.algorithm_name_en]
    return [
        *names,
        *names,
        (document.get("algorithm") or {}).get("purpose") or "",
        city.name_zh if city else "",
        city.name_en if city else "",
        filing.city_code,
        document.get("department") or "",
        *SCENARIO_LABELS.get(filing.scenario or "", ()),
        filing.filing_number or "",
    ]


def _token_text(filing: Filing, city: City | None) -> str:
    return " ".join(token for text in document_text(filing, city) for token in tokens(text))


# --- keeping the index current --------------------------------------------------------------------------------------


def _decision_step(session: Session, filing_id: int) -> tuple[str | None, datetime | None]:
    """The outcome and time of the filing's latest decision: the state its approve / approve-with-conditions /
    reject step led to (the trail is written before the decision row is marked effective), and when."""
    step = session.exec(
        select(FilingTransition.to_state, FilingTransition.at)
        .where(FilingTransition.filing_id == filing_id, FilingTransition.action.in_(list(DECISION_ACTIONS)))
        .order_by(FilingTransition.id.desc())
        .limit(1)
    ).first()
    return (step[0], step[1]) if step is not None else (None, None)


def refresh(session: Session, filing: Filing) -> None:
    """Index ``filing`` if it is public, remove it from the index if not. Call after any change of its state
    (registry.filings.service does, in the same transaction); the caller commits."""
    row = session.get(LibrarySearch, filing.id)
    if not public.is_public(filing):
        if row is not None:
            session.delete(row)
            session.flush()
        return
    outcome, decided = _decision_step(session, filing.id)
    values = _row(filing, session.get(City, filing.city_code), outcome, decided)
    if row is None:
        session.add(LibrarySearch(**values))
    else:
        for name, value in values.items():
            setattr(row, name, value)
        session.add(row)
    session.flush()


def _row(filing: Filing, city: City | None, outcome: str | None, decided: datetime | None) -> dict:
    return {
        "filing_id": filing.id,
        "tokens": _token_text(filing, city),
        "state": filing.state,
        "city_code": filing.city_code,
        "scenario": filing.scenario,
        "risk_tier": filing.risk_tier,
        "outcome": outcome,
        "decided_at": filing.decided_at or decided,  # a rejection sets no decided_at on the filing
        "name_zh": filing.algorithm_name_zh or "",
        "name_en": filing.algorithm_name_en or "",
    }


def reindex(session: Session, *, batch: int = 500) -> int:
    """Rebuild the whole index from the filings (``registry library reindex``). Returns the number indexed."""
    session.exec(sa.delete(LibrarySearch))
    cities = {c.code: c for c in session.exec(select(City))}
    steps: dict[int, tuple[str, datetime]] = {}
    for filing_id, to_state, at in session.exec(
        select(FilingTransition.filing_id, FilingTransition.to_state, FilingTransition.at)
        .where(FilingTransition.action.in_(list(DECISION_ACTIONS)))
        .order_by(FilingTransition.id)
    ):
        steps[filing_id] = (to_state, at)  # the latest wins
    count, last_id = 0, 0
    while True:
        filings = session.exec(
            select(Filing)
            .options(defer(Filing.test_report), defer(Filing.risk_assessment))
            .where(Filing.state.in_(public.PUBLIC_STATE_VALUES), Filing.id > last_id)
            .order_by(Filing.id)
            .limit(batch)
        ).all()
        if not filings:
            break
        session.add_all(
            LibrarySearch(**_row(f, cities.get(f.city_code), *steps.get(f.id, (None, None)))) for f in filings
        )
        session.flush()
        count += len(filings)
        last_id = filings[-1].id
        session.expunge_all()  # written: let the batch go (bounded memory on a large registry)
    if session.get_bind().dialect.name == "sqlite":  # the FTS index from its content table, whatever happened before
        session.exec(sa.text("INSERT INTO library_search_fts(library_search_fts) VALUES ('rebuild')"))
    return count


def ensure_built(session: Session) -> int:
    """Build the index if it is empty while public filings exist (a registry upgraded past migration 0008, which
    cannot run this code itself); returns how many were indexed (0 when nothing was to do)."""
    if session.exec(select(LibrarySearch.filing_id).limit(1)).first() is not None:
        return 0
    if session.exec(select(Filing.id).where(Filing.state.in_(public.PUBLIC_STATE_VALUES)).limit(1)).first() is None:
        return 0
    return reindex(session)


# --- the query -----------------------------------------------------------------------------------------------------

RELEVANCE, NEWEST, NAME, CITY, TIER = "relevance", "newest", "name", "city", "tier"
SORTS = (RELEVANCE, NEWEST, NAME, CITY, TIER)
PER_PAGE = 20
OUTCOMES = tuple(o.value for o in Outcome)


@dataclass(frozen=True)
class LibraryQuery:
    """What a reader asked the library for. ``sort`` None: by relevance when searching, else newest decision."""

    text: str = ""
    city: str | None = None
    scenario: str | None = None
    tier: str | None = None
    outcome: str | None = None
    state: str | None = None
    year: int | None = None
    sort: str | None = None
    page: int = 1
    per_page: int = PER_PAGE
    language: str = "zh"  # whose name the "name" order uses

    @property
    def terms(self) -> list[Term]:
        return query_terms(self.text)

    @property
    def effective_sort(self) -> str:
        if self.sort == RELEVANCE and not self.terms:
            return NEWEST
        return self.sort or (RELEVANCE if self.terms else NEWEST)

    def args(self, **changes) -> dict[str, str]:
        """The query as URL parameters, empty ones left out (a stable, canonical address), with ``changes``."""
        values = {
            "q": self.text.strip(),
            "city": self.city,
            "scenario": self.scenario,
            "tier": self.tier,
            "outcome": self.outcome,
            "state": self.state,
            "year": self.year,
            "sort": self.sort,
            "page": self.page if self.page > 1 else None,
        } | changes
        return {k: str(v) for k, v in values.items() if v not in (None, "")}


def _int(value: str | None) -> int | None:
    value = (value or "").strip()
    return int(value) if value.isascii() and value.isdigit() and len(value) < 10 else None


def parse(args: Mapping[str, str], *, cities: Iterable[str], language: str = "zh") -> LibraryQuery:
    """A LibraryQuery from URL parameters; a value the library does not know is ignored, never an error."""

    def known(name: str, allowed: Iterable[str]) -> str | None:
        value = (args.get(name) or "").strip()
        return value if value in set(allowed) else None

    year = _int(args.get("year"))
    page = _int(args.get("page")) or 1
    return LibraryQuery(
        text=(args.get("q") or "").strip()[:MAX_QUERY_CHARS],
        city=known("city", cities),
        scenario=known("scenario", SCENARIO_LABELS),
        tier=known("tier", risk.TIERS),
        outcome=known("outcome", OUTCOMES),
        state=known("state", public.PUBLIC_STATE_VALUES),
        year=year if year is not None and 2000 <= year <= 2200 else None,
        sort=known("sort", SORTS),
        page=max(1, min(page, 100_000)),
        per_page=PER_PAGE,
        language="en" if language.startswith("en") else "zh",
    )


@dataclass(frozen=True)
class Results:
    """One page of the library: each row is :func:`registry.library.public.summary` plus the decision's outcome
    and date (``decision_date``: a rejection has no ``decided_at``)."""

    rows: list[dict]
    total: int
    page: int
    per_page: int
    sort: str
    query: LibraryQuery = field(default_factory=LibraryQuery)

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.per_page))

    @property
    def first(self) -> int:
        return (self.page - 1) * self.per_page + 1 if self.rows else 0

    @property
    def last(self) -> int:
        return self.first + len(self.rows) - 1 if self.rows else 0


def _match(session: Session, terms: list[Term]):
    """(the condition that a filing matches ``terms``, its relevance: larger is better, or a FROM clause to join
    for it) on this database."""
    if session.get_bind().dialect.name == "postgresql":
        vector = sa.literal_column(f"library_search.{TSVECTOR_COLUMN}")
        tsquery = sa.func.to_tsquery(
            sa.literal_column("'simple'::regconfig"), sa.bindparam("tsquery", _tsquery(terms), type_=sa.Text)
        )
        return vector.op("@@")(tsquery), sa.func.ts_rank(vector, tsquery)
    fts = sa.table(FTS_TABLE, sa.column("rowid"))
    match = _fts_match(terms)
    hits = (
        sa.select(fts.c.rowid.label("filing_id"), (-sa.func.bm25(sa.literal_column(FTS_TABLE))).label("score"))
        .select_from(fts)
        .where(match)
        .subquery("hits")
    )  # bm25: smaller is better
    return LibrarySearch.filing_id.in_(sa.select(fts.c.rowid).select_from(fts).where(match)), hits


_LISTED_COLUMNS = (
    "id",
    "filing_number",
    "algorithm_name_zh",
    "algorithm_name_en",
    "algorithm_version",
    "city_code",
    "scenario",
    "risk_tier",
    "state",
    "decided_at",
    "next_audit_due",
)


@dataclass(frozen=True)
class _Listed:
    """What :func:`registry.library.public.summary` reads of a filing, and of its document only the department: a
    page of the list never loads and decodes twenty technical documents."""

    id: int
    filing_number: str | None
    algorithm_name_zh: str
    algorithm_name_en: str
    algorithm_version: str
    city_code: str
    scenario: str | None
    risk_tier: str | None
    state: str
    decided_at: datetime | None
    next_audit_due: datetime | None
    technical_document: dict


def _year_range(year: int) -> tuple[datetime, datetime]:
    return datetime(year, 1, 1, tzinfo=UTC), datetime(year + 1, 1, 1, tzinfo=UTC)


# What a caller may keep a search's ranking in: given the ranking's key and how to make it, the ranking (from its
# store, or made now and kept). registry.library.fragments.Rankings keeps them under the library's version.
Remember = Callable[[tuple, Callable[[], Sequence[int]]], Sequence[int]]


def find(session: Session, query: LibraryQuery, remember: Remember | None = None) -> Results:
    """One page of public filings matching ``query``, with the number of all matches. Three small queries, whatever
    the page: the count and the ids of the page on the index table alone, then those filings with their cities.
    A filing is shown only if it is public now, whatever the index says.

    With ``remember``, a search (words) ranks all its matches once and keeps the ranking: a search is ranked on
    every match, whatever the page, so its other pages, the same search in the other language and through the API
    are slices of it, and the count is its length."""
    conditions = []
    for column, value in (
        (LibrarySearch.city_code, query.city),
        (LibrarySearch.scenario, query.scenario),
        (LibrarySearch.risk_tier, query.tier),
        (LibrarySearch.state, query.state),
        (LibrarySearch.outcome, query.outcome),
    ):
        if value is not None:
            conditions.append(column == value)
    if query.year is not None:
        start, end = _year_range(query.year)
        conditions += [LibrarySearch.decided_at >= start, LibrarySearch.decided_at < end]
    terms = query.terms
    relevance = None
    sort = query.effective_sort
    # SQLite, words and nothing else: the full-text index alone counts and ranks (its rows are the index table's,
    # kept in step by triggers), without joining thousands of matches to the table: a few times faster.
    text_only = bool(terms) and not conditions and session.get_bind().dialect.name == "sqlite"
    if terms:
        matched, relevance = _match(session, terms)
        conditions.append(matched)
    base = sa.select(LibrarySearch.filing_id).where(*conditions)

    def ranked(limit: int | None = None, offset: int = 0) -> list[int]:
        if text_only and sort == RELEVANCE:
            statement = _fts_ranked(terms)
        else:
            statement = _ordered(base, query, sort, relevance)
        if limit is not None:
            statement = statement.limit(limit).offset(offset)
        return [row[0] for row in session.exec(statement)]

    def all_ranked() -> list[int]:
        with _through_the_text_index(session, True):
            return ranked()

    if terms and remember is not None:
        ranking = remember(_ranking_key(query, terms, sort), all_ranked)
        total = len(ranking)
        page = min(query.page, max(1, math.ceil(total / query.per_page)))
        ids = list(ranking[(page - 1) * query.per_page : page * query.per_page])
    else:
        with _through_the_text_index(session, bool(terms)):
            counted = _fts_matches(terms) if text_only else base
            total = session.exec(sa.select(sa.func.count()).select_from(counted.subquery())).one()[0]
            page = min(query.page, max(1, math.ceil(total / query.per_page)))
            ids = ranked(query.per_page, (page - 1) * query.per_page)
    return Results(rows=_listed(session, ids), total=total, page=page, per_page=query.per_page, sort=sort, query=query)


def _ranking_key(query: LibraryQuery, terms: list[Term], sort: str) -> tuple:
    """What a search's ranking depends on: its terms, filters and order (and for the order by name, whose)."""
    filters = (query.city, query.scenario, query.tier, query.outcome, query.state, query.year)
    return (
        "ranking",
        tuple((t.tokens, t.prefix) for t in terms),
        filters,
        sort,
        query.language if sort == NAME else None,
    )


@contextlib.contextmanager
def _through_the_text_index(session: Session, searching: bool):
    """PostgreSQL, while searching: the text index, not a scan of the table. A filing's search vector is a few kB,
    kept out of line (TOAST), and the planner does not count unpacking it: for a word a quarter of the library
    matches it chose to read every row's vector (36 ms) over the GIN index (7 ms). For these queries only."""
    if not searching or session.get_bind().dialect.name != "postgresql":
        yield
        return
    session.execute(sa.text("SET LOCAL enable_seqscan = off"))
    try:
        yield
    finally:
        session.execute(sa.text("SET LOCAL enable_seqscan TO DEFAULT"))


def _fts_matches(terms: list[Term]):
    """The rows of the SQLite full-text index that match ``terms``."""
    fts = sa.table(FTS_TABLE, sa.column("rowid"))
    return sa.select(fts.c.rowid).select_from(fts).where(_fts_match(terms))


def _fts_match(terms: list[Term]):
    return sa.literal_column(FTS_TABLE).op("MATCH")(sa.bindparam("fts", _fts5_query(terms), type_=sa.Text))


def _fts_ranked(terms: list[Term]):
    """The filings matching ``terms``, best first (bm25: smaller is better; ties newest filing first, as
    :func:`_ordered`), from the SQLite full-text index alone."""
    bm25 = sa.func.bm25(sa.literal_column(FTS_TABLE))
    rowid = sa.literal_column("rowid")
    return _fts_matches(terms).order_by(bm25, rowid.desc())


def _ordered(base, query: LibraryQuery, sort: str, relevance):
    """The ids ``base`` selects, in the order ``sort`` names."""
    if sort == RELEVANCE:  # only when searching (effective_sort)
        if isinstance(relevance, sa.Subquery):  # SQLite: bm25 comes with the FTS5 match
            base = base.join(relevance, relevance.c.filing_id == LibrarySearch.filing_id)
            relevance = relevance.c.score
        order = [relevance.desc()]
    else:
        order = {
            NEWEST: [LibrarySearch.decided_at.desc()],
            NAME: [LibrarySearch.name_en if query.language == "en" else LibrarySearch.name_zh],
            CITY: [LibrarySearch.city_code, LibrarySearch.decided_at.desc()],
            TIER: [LibrarySearch.risk_tier.desc().nulls_last(), LibrarySearch.decided_at.desc()],  # "IV" > "III" > …
        }[sort]
    order.append(LibrarySearch.filing_id.desc())
    return base.order_by(*order)


def _listed(session: Session, ids: list[int]) -> list[dict]:
    """The list's rows for the filings ``ids``, in that order: those that are public now, whatever the index says."""
    listed = {}
    if ids:
        columns = [getattr(Filing, name) for name in _LISTED_COLUMNS]
        department = Filing.technical_document["department"].as_string()
        for values in session.exec(
            sa.select(*columns, department, City, LibrarySearch.outcome, LibrarySearch.decided_at)
            .join(LibrarySearch, LibrarySearch.filing_id == Filing.id)
            .outerjoin(City, City.code == Filing.city_code)
            .where(Filing.id.in_(ids), Filing.state.in_(public.PUBLIC_STATE_VALUES))
        ):
            *fields, department_value, city, outcome, decided = values
            filing = _Listed(*fields, technical_document={"department": department_value})
            listed[filing.id] = public.summary(filing, city) | {  # type: ignore[arg-type]  (the columns it reads)
                "outcome": outcome,
                "decision_date": decided.isoformat() if decided else None,
            }
    return [listed[i] for i in ids if i in listed]


def decision_years(session: Session) -> list[int]:
    """The years in which public decisions were taken, newest first (for the year filter)."""
    # Two scalar subqueries: each is one step down the index (SQLite scans the table for min and max together).
    low, high = session.exec(
        sa.select(
            sa.select(sa.func.min(LibrarySearch.decided_at)).scalar_subquery(),
            sa.select(sa.func.max(LibrarySearch.decided_at)).scalar_subquery(),
        )
    ).one()
    if low is None or high is None:
        return []
    low, high = (value if isinstance(value, datetime) else datetime.fromisoformat(str(value)) for value in (low, high))
    return list(range(high.year, low.year - 1, -1))
