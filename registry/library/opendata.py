"""Open data of the public library: the search behind ``GET /api/v1/library``, the whole library streamed as JSON
and CSV, each entry as CSV, and the Atom feed of the decision log. No Flask here: the views pass in how to build
links, and every record comes from :mod:`registry.library.public` (the privacy boundary), nothing else.

CSV files are UTF-8 with a byte-order mark (so that Excel opens the Chinese correctly), RFC 4180 (CRLF), with the
stable columns documented in :data:`LIBRARY_CSV_COLUMNS` and :data:`ENTRY_CSV_COLUMNS`. A text cell that begins
like a spreadsheet formula (``= + - @``) is prefixed with an apostrophe so that opening the file runs nothing.

The API's search is the library page's (:func:`registry.library.search.find`, a bigram full-text index): this
module only parses its parameters strictly (a bad value is a 422 naming ``/query/<name>``, where the page ignores
it).
"""

from __future__ import annotations

import csv
import io
import json
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime

from sqlalchemy.orm import defer
from sqlmodel import Session, select

from registry.cities.models import City
from registry.errors import ValidationFailed
from registry.filings import risk
from registry.filings.models import Filing
from registry.library import public, search
from schemas.validation import FieldError

BOM = "\ufeff"
BATCH = 500  # filings read per query when streaming the whole library

# --- the API's query ------------------------------------------------------------------------------------------------

# GET /api/v1/library takes q, city, scenario, tier, decision, state, year, sort, page and per_page: the library
# page's query, where ``decision`` is the outcome of the filing's decision (``outcome``, the page's name, works too).
OUTCOMES = search.OUTCOMES
MAX_PER_PAGE = 200
YEARS = (2000, 2200)


def _error(name: str, keyword: str, message: str, message_zh: str) -> FieldError:
    return FieldError(pointer=f"/query/{name}", keyword=keyword, message=message, message_zh=message_zh)


def _int(args: Mapping, name: str, default: int | None, low: int, high: int, errors: list) -> int | None:
    raw = args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        errors.append(_error(name, "type", f"{name} must be an integer.", f"{name} 必须是整数。"))
        return default
    if not low <= value <= high:
        errors.append(
            _error(
                name,
                "minimum" if value < low else "maximum",
                f"{name} must be between {low} and {high}.",
                f"{name} 必须在 {low} 到 {high} 之间。",
            )
        )
        return default
    return value


def parse_query(
    args: Mapping, *, session: Session, default_per_page: int = 50, language: str = "zh"
) -> search.LibraryQuery:
    """The library query of the API's URL parameters, for :func:`registry.library.search.find` (the same query as
    the library page). Unlike the page, which ignores what it does not know, the API refuses a bad value: raises
    ValidationFailed naming each at ``/query/<name>`` (an unknown city, scenario, tier, decision, public state or
    sort; a year or page out of range or not a whole number; a search text that is too long). Parameters it does
    not know are ignored."""
    errors: list[FieldError] = []
    q = (args.get("q") or "").strip()
    if len(q) > search.MAX_QUERY_CHARS:
        errors.append(
            _error(
                "q",
                "maxLength",
                f"The search text may have at most {search.MAX_QUERY_CHARS} characters.",
                f"搜索内容不得超过 {search.MAX_QUERY_CHARS} 个字符。",
            )
        )
    allowed = {
        "scenario": tuple(search.SCENARIO_LABELS),
        "tier": risk.TIERS,
        "decision": OUTCOMES,
        "state": public.PUBLIC_STATE_VALUES,
        "sort": search.SORTS,
    }
    chosen: dict[str, str | None] = {}
    for name in ("city", "scenario", "tier", "decision", "state", "sort"):
        value = args.get(name) or (args.get("outcome") if name == "decision" else None) or None
        chosen[name] = value
        if value is None:
            continue
        known = session.get(City, value) is not None if name == "city" else value in allowed[name]
        if not known:
            choices = "a city code of the registry" if name == "city" else f"one of {', '.join(allowed[name])}"
            choices_zh = "本系统中的城市代码" if name == "city" else "、".join(allowed[name])
            errors.append(
                _error(
                    name,
                    "enum",
                    f"Unknown {name} {value!r}; use {choices}.",
                    f"未知的 {name} 取值“{value}”，可用：{choices_zh}。",
                )
            )
    year = _int(args, "year", None, *YEARS, errors)
    page = _int(args, "page", 1, 1, 100_000, errors)
    per_page = _int(args, "per_page", default_per_page, 1, MAX_PER_PAGE, errors)
    if errors:
        raise ValidationFailed(
            "Bad query parameter(s): " + ", ".join(e.pointer.rsplit("/", 1)[-1] for e in errors) + ".",
            code="bad_query",
            errors=errors,
        )
    return search.LibraryQuery(
        text=q,
        city=chosen["city"],
        scenario=chosen["scenario"],
        tier=chosen["tier"],
        outcome=chosen["decision"],
        state=chosen["state"],
        year=year,
        sort=chosen["sort"],
        page=page,
        per_page=per_page,
        language=language,
    )


def query_params(query: search.LibraryQuery, **changes) -> dict:
    """The API parameters of ``query`` (empty ones left out), with ``changes``: the links of a page of answers."""
    values = {
        "q": query.text,
        "city": query.city,
        "scenario": query.scenario,
        "tier": query.tier,
        "decision": query.outcome,
        "state": query.state,
        "year": query.year,
        "sort": query.sort,
        "page": query.page,
        "per_page": query.per_page,
    } | changes
    return {k: v for k, v in values.items() if v not in (None, "")}


# --- the whole library ----------------------------------------------------------------------------------------------

_LIGHT = (defer(Filing.test_report), defer(Filing.risk_assessment))  # what a list row never reads


def iter_summaries(*, session: Session, batch: int = BATCH) -> Iterator[dict]:
    """Every public filing as a list row (as the API lists it: with its decision's outcome and date), in id order,
    read ``batch`` at a time (keyset pagination), so the whole library streams in bounded memory."""
    cities = {c.code: c for c in session.exec(select(City))}
    last = 0
    while True:
        rows = session.exec(
            select(Filing, search.LibrarySearch.outcome, search.LibrarySearch.decided_at)
            .outerjoin(search.LibrarySearch, search.LibrarySearch.filing_id == Filing.id)
            .where(Filing.state.in_(public.PUBLIC_STATE_VALUES), Filing.id > last)
            .order_by(Filing.id)
            .limit(batch)
            .options(*_LIGHT)
        ).all()
        for filing, outcome, decided in rows:
            yield public.summary(filing, cities.get(filing.city_code)) | {
                "outcome": outcome,
                "decision_date": decided.isoformat() if decided else None,
            }
        if len(rows) < batch:
            return
        last = rows[-1][0].id
        session.expunge_all()  # the batch is written out: let it go


def stream_json(summaries: Iterable[dict], *, links: Callable[[dict], dict], head: dict) -> Iterator[str]:
    """``{…head, "items": [row + its links, …], "total": n}`` as text chunks, one row at a time."""
    opening = json.dumps(head, ensure_ascii=False)[:-1]
    yield opening + (', "items": [' if head else '"items": [')
    total = 0
    for row in summaries:
        yield ("," if total else "") + "\n" + json.dumps(row | {"links": links(row)}, ensure_ascii=False)
        total += 1
    yield f'\n], "total": {total}}}\n'


# --- CSV ------------------------------------------------------------------------------------------------------------

# The columns of /library.csv, one row per public filing (the documentation of the file, in this order).
LIBRARY_CSV_COLUMNS = (
    ("filing_number", "Filing number (备案编号), e.g. 豫算备410100-2026-0001; empty for a rejected filing"),
    ("filing_id", "The filing's id in the registry"),
    ("name_zh", "The algorithm's name in Chinese"),
    ("name_en", "The algorithm's name in English"),
    ("version", "The algorithm's version"),
    ("city_code", "City code (GB/T 2260)"),
    ("city_name_zh", "City name in Chinese"),
    ("city_name_en", "City name in English"),
    ("department", "The department that uses it"),
    ("scenario", "Approval scenario (code of the technical-document schema)"),
    ("risk_tier", "Risk tier, I (lowest) to IV (highest)"),
    ("state", "Lifecycle state: approved, approved_with_conditions, rejected, suspended, revoked, expired, superseded"),
    ("outcome", "The outcome of its decision: approved, approved_with_conditions or rejected"),
    ("decision_date", "When the decision was taken (RFC 3339, UTC), rejections included"),
    ("decided_at", "When it was approved (RFC 3339, UTC); empty when rejected"),
    ("next_audit_due", "When its next periodic re-audit falls due (RFC 3339, UTC); empty when none is scheduled"),
    ("entry_url", "The entry page"),
    ("entry_json_url", "The entry as JSON (schema urn:algorithm-registry:schema:library-entry:1)"),
)

# The columns of /library/<filing number>.csv: the entry's key facts and its audits' figures, one fact per row.
ENTRY_CSV_COLUMNS = (
    ("section", "entry | document | input | decision | audit | overall | criterion | group | attribute | claim"),
    ("audit_id", "The audit the row belongs to (audit sections only)"),
    ("group", "The group (e.g. sex=female; residence=rural), the input, the criterion or the claim's scope"),
    ("measure", "What the row gives: a field of the entry, or a figure (selection_rate, accuracy, tpr…)"),
    ("value", "The value (figures are shares from 0 to 1, counts are whole numbers)"),
    ("ci_low", "Low end of the bootstrap confidence interval of the figure"),
    ("ci_high", "High end of the bootstrap confidence interval of the figure"),
    ("claimed", "The figure the city claimed in its test report (claim rows)"),
    (
        "status",
        "pass / fail / insufficient_data (criteria), consistent / differs / not_measured (claims), "
        "insufficient_data (groups too small to judge)",
    ),
)

GROUP_MEASURES = (
    "n",
    "base_rate",
    "selection_rate",
    "accuracy",
    "balanced_accuracy",
    "precision",
    "recall",
    "tpr",
    "fpr",
    "fnr",
    "f1",
    "roc_auc",
    "brier",
    "impact_ratio",
)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value) -> object:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def _csv_chunk(rows: Iterable[Iterable]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerows([_cell(v) for v in row] for row in rows)
    return buffer.getvalue()


def library_csv_row(row: dict, links: dict) -> list:
    city = row["city"]
    return [
        row["filing_number"],
        row["filing_id"],
        row["name_zh"],
        row["name_en"],
        row["version"],
        city["code"],
        city["name_zh"],
        city["name_en"],
        row["department"],
        row["scenario"],
        row["risk_tier"],
        row["state"],
        row.get("outcome"),
        row.get("decision_date"),
        row["decided_at"],
        row["next_audit_due"],
        links.get("page"),
        links.get("json"),
    ]


def stream_library_csv(summaries: Iterable[dict], *, links: Callable[[dict], dict]) -> Iterator[str]:
    """The BOM and the header, then the rows, written a batch at a time."""
    yield BOM + _csv_chunk([[name for name, _ in LIBRARY_CSV_COLUMNS]])
    batch: list[list] = []
    for row in summaries:
        batch.append(library_csv_row(row, links(row)))
        if len(batch) >= BATCH:
            yield _csv_chunk(batch)
            batch = []
    if batch:
        yield _csv_chunk(batch)


def _group_label(group: dict | None, order: list[str]) -> str:
    group = group or {}
    keys = [k for k in order if k in group] + sorted(k for k in group if k not in order)
    return "; ".join(f"{k}={group[k]}" for k in keys)


def _interval(intervals: dict | None, measure: str) -> tuple:
    found = (intervals or {}).get(measure)
    return (found[0], found[1]) if isinstance(found, list) and len(found) == 2 else (None, None)


def _figure_rows(section: str, audit_id: int, rows: list[dict], interval_rows: list[dict], order: list[str]) -> list:
    by_group = {json.dumps(r.get("group"), sort_keys=True): r for r in interval_rows or []}
    out = []
    for row in rows or []:
        label = _group_label(row.get("group"), order)
        intervals = by_group.get(json.dumps(row.get("group"), sort_keys=True))
        status = "insufficient_data" if row.get("insufficient_data") else None
        for measure in GROUP_MEASURES:
            if measure in row:
                out.append(
                    [section, audit_id, label, measure, row[measure], *_interval(intervals, measure), None, status]
                )
    return out


def _audit_rows(audit: dict) -> list:
    report = audit.get("report") or {}
    audit_id = audit["id"]
    order = list(report.get("sensitive_attributes") or [])
    intervals = report.get("intervals") or {}
    rows = [
        ["audit", audit_id, None, measure, audit.get(measure), None, None, None, None]
        for measure in ("reason", "dataset", "finished_at", "verdict", "report_sha256")
    ]
    overall = report.get("overall") or {}
    rows += [
        [
            "overall",
            audit_id,
            None,
            measure,
            overall[measure],
            *_interval(intervals.get("overall"), measure),
            None,
            None,
        ]
        for measure in GROUP_MEASURES
        if measure in overall
    ]
    for criterion in report.get("criteria") or []:
        low, high = (criterion.get("interval") or [None, None])[:2]
        rows.append(
            [
                "criterion",
                audit_id,
                criterion.get("id"),
                criterion.get("figure"),
                criterion.get("value"),
                low,
                high,
                None,
                criterion.get("status"),
            ]
        )
    rows += _figure_rows("group", audit_id, report.get("by_group"), intervals.get("by_group"), order)
    for attribute, marginal in sorted((report.get("by_attribute") or {}).items()):
        rows += _figure_rows(
            "attribute", audit_id, marginal, (intervals.get("by_attribute") or {}).get(attribute), order
        )
    for claim in (report.get("claims") or {}).get("rows") or []:
        scope = claim.get("scope") or {}
        label = "overall" if scope.get("overall") else _group_label(scope.get("group"), order)
        low, high = (claim.get("interval") or [None, None])[:2]
        rows.append(
            [
                "claim",
                audit_id,
                label,
                claim.get("figure"),
                claim.get("measured"),
                low,
                high,
                claim.get("claimed"),
                claim.get("status"),
            ]
        )
    return rows


def entry_csv(entry: dict) -> str:
    """The entry (:func:`registry.library.public.entry`) as CSV: BOM, header, then one fact or figure per row."""

    def fact(section: str, measure: str, value, group: str | None = None) -> list:
        return [section, None, group, measure, value, None, None, None, None]

    document = entry.get("document") or {}
    city = entry["city"]
    rows = [
        fact("entry", name, entry.get(name)) for name in ("filing_number", "filing_id", "name_zh", "name_en", "version")
    ]
    rows += [fact("entry", f"city_{key}", city.get(key)) for key in ("code", "name_zh", "name_en")]
    rows += [
        fact("entry", name, entry.get(name))
        for name in ("department", "scenario", "risk_tier", "state", "decided_at", "next_audit_due")
    ]
    rows += [
        fact("document", "purpose", document.get("purpose")),
        fact("document", "decision_role", document.get("decision_role")),
        fact("document", "affected_population", (document.get("affected_population") or {}).get("description")),
        fact("document", "human_oversight", (document.get("human_oversight") or {}).get("description")),
        fact("document", "appeal_process", (document.get("human_oversight") or {}).get("appeal_process")),
    ]
    for item in (document.get("model") or {}).get("inputs") or []:
        name = item.get("name")
        rows += [
            fact("input", "type", item.get("type"), name),
            fact("input", "sensitive_attribute", item.get("sensitive_attribute"), name),
            fact("input", "likely_proxy_for", "; ".join(item.get("likely_proxy_for") or []), name),
        ]
    for decision in entry.get("decisions") or []:
        outcome = decision["outcome"]
        rows += [
            fact("decision", "outcome", outcome, outcome),
            fact("decision", "effective_at", decision.get("effective_at"), outcome),
            fact("decision", "log_index", decision.get("log_index"), outcome),
        ]
        rows += [fact("decision", "condition", text, outcome) for text in decision.get("conditions") or []]
        rows += [fact("decision", "reason", text, outcome) for text in decision.get("reasons") or []]
    for audit in entry.get("audits") or []:
        rows += _audit_rows(audit)
    return BOM + _csv_chunk([[name for name, _ in ENTRY_CSV_COLUMNS], *rows])


# --- the Atom feed (RFC 4287) ---------------------------------------------------------------------------------------

ATOM = "http://www.w3.org/2005/Atom"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
TAG_DATE = "2026"  # the date in every tag: URI (RFC 4151) of this registry
FEED_SIZE = 100

KINDS = {
    "approved": ("准予备案", "Approved"),
    "approved_with_conditions": ("附条件准予备案", "Approved with conditions"),
    "rejected": ("不予备案", "Rejected"),
    "suspended": ("暂停使用", "Suspended"),
    "revoked": ("撤销备案", "Revoked"),
    "expired": ("备案失效", "Expired"),
    "superseded": ("被新版本替代", "Superseded by a new version"),
}


def tag_uri(authority: str, specific: str) -> str:
    """A stable ``tag:`` URI (RFC 4151) for ``specific`` under the registry's host name."""
    return f"tag:{authority},{TAG_DATE}:{specific}"


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attributes) -> ET.Element:
    element = ET.SubElement(parent, tag, {k: v for k, v in attributes.items() if v is not None})
    if text is not None:
        element.text = text
    return element


def _event_text(event: dict) -> tuple[str, str]:
    kind_zh, kind_en = KINDS.get(event["kind"], (event["kind"], event["kind"]))
    city = event["city"]
    title = (
        f"{kind_zh}：{event['name_zh']} {event['version']}（{city['name_zh'] or city['code']}）"
        f" · {kind_en}: {event['name_en']} {event['version']} ({city['name_en'] or city['code']})"
    )
    lines = [f"备案编号 Filing number: {event['filing_number'] or '—'}"]
    lines += [f"条件 Condition: {text}" for text in event["conditions"]]
    lines += [f"理由 Reason: {text}" for text in event["reasons"]]
    lines.append(f"决定日志 Decision log: #{event['index']}, leaf hash {event['leaf_hash']}")
    return title, "\n".join(lines)


def atom_feed(
    events: list[dict],
    *,
    authority: str,
    self_url: str,
    library_url: str,
    entry_url: Callable[[str], str],
    log_entry_url: Callable[[int], str],
    now: datetime,
) -> bytes:
    """The Atom 1.0 feed of ``events`` (:func:`registry.library.public.log_events`, newest first): one entry per
    decision-log entry, with a stable ``tag:`` id (the log index), the time of the step, a link to the entry page
    (``entry_url`` of its :func:`registry.library.public.entry_key`) and to the log entry that proves it."""
    feed = ET.Element("feed", {"xmlns": ATOM, XML_LANG: "zh-CN"})
    _sub(feed, "id", tag_uri(authority, "library/decisions"))
    _sub(feed, "title", "算法备案库：备案决定 · Algorithm filing library: decisions")
    _sub(
        feed,
        "subtitle",
        "每一项备案决定、暂停、撤销、失效和版本替代，均记录于公开的决定日志。"
        " Every decision, suspension, revocation, expiry and supersession, as recorded in the public decision log.",
    )
    _sub(feed, "updated", events[0]["at"] if events else now.isoformat())
    author = _sub(feed, "author")
    _sub(author, "name", "省级算法备案审核 · Provincial algorithm filing review")
    _sub(feed, "link", rel="self", type="application/atom+xml", href=self_url)
    _sub(feed, "link", rel="alternate", type="text/html", href=library_url)
    _sub(feed, "generator", "algorithm-registry")
    for event in events:
        title, text = _event_text(event)
        entry = _sub(feed, "entry")
        _sub(entry, "id", tag_uri(authority, f"decision-log/{event['index']}"))
        _sub(entry, "title", title)
        _sub(entry, "updated", event["at"])
        _sub(entry, "published", event["at"])
        key = public.entry_key(event["filing_number"], event["filing_id"])
        _sub(entry, "link", rel="alternate", type="text/html", href=entry_url(key))
        _sub(entry, "link", rel="related", type="application/json", href=log_entry_url(event["index"]))
        _sub(entry, "category", term=event["kind"], label=KINDS.get(event["kind"], ("", event["kind"]))[1])
        _sub(entry, "content", text, type="text")
    return ET.tostring(feed, encoding="utf-8", xml_declaration=True)
