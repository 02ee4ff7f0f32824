"""Open data, the read-only public API, the Atom feed, and the standings and statistics pages (blueprint
``library_data``). Thin handlers: they parse, call :mod:`registry.library.opendata`, ``standings`` and
``statistics``, and answer; every record comes from :mod:`registry.library.public`.

Everything here is public (no login) and read-only. The API and the data files answer every request, errors and
CORS preflights included, with ``Access-Control-Allow-Origin: *`` (no credentials are ever involved).
"""

from __future__ import annotations

from urllib.parse import quote, urlsplit

from flask import Blueprint, Response, current_app, render_template, request, stream_with_context, url_for
from flask_babel import gettext as _

from registry import problems
from registry.access import allow
from registry.api_support import json_response
from registry.authz import PUBLIC
from registry.db import utcnow
from registry.errors import NotFound
from registry.i18n import is_chinese, pick
from registry.library import fragments, opendata, page_cache, public, search, standings, statistics
from registry.request_db import db
from registry.web import labels

bp = Blueprint("library_data", __name__)

API = "/api/v1/library"
# The data files (not under /api/) that answer cross-origin requests too.
DATA_ENDPOINTS = frozenset(
    {
        "library_data.library_json",
        "library_data.library_csv",
        "library_data.entry_json",
        "library_data.entry_csv",
        "library_data.feed",
    }
)
CSV_TYPE = "text/csv; charset=utf-8"
ENTRY_SCHEMA = "library-entry"


# --- CORS -----------------------------------------------------------------------------------------------------------


@bp.after_app_request
def _cors(response: Response) -> Response:
    """Open to every origin: on the API (any path under it, so a 404 too) and on the data files, errors included.
    A preflight (OPTIONS, answered by Flask) learns the methods and headers it may use."""
    if not (request.path.startswith(API) or request.endpoint in DATA_ENDPOINTS):
        return response
    headers = response.headers
    headers["Access-Control-Allow-Origin"] = "*"
    headers["Access-Control-Expose-Headers"] = "Link, Content-Disposition"
    if request.method == "OPTIONS":
        headers["Access-Control-Allow-Methods"] = "GET, HEAD, OPTIONS"
        headers["Access-Control-Allow-Headers"] = request.headers.get(
            "Access-Control-Request-Headers", "Accept, Accept-Language, Content-Type"
        )
        headers["Access-Control-Max-Age"] = "86400"
    return response


# --- links ----------------------------------------------------------------------------------------------------------

_MARK = "FILING-NUMBER"  # a placeholder: the URL of each endpoint is built once, then filled in per row


class Links:
    """The links of a list row: built with url_for once per request, not once per row of 10,000."""

    def __init__(self) -> None:
        root = request.url_root.rstrip("/")
        self.templates = {
            "page": f"{root}/library/{_MARK}",
            "json": url_for("library_data.entry_json", filing_number=_MARK, _external=True),
            "csv": url_for("library_data.entry_csv", filing_number=_MARK, _external=True),
            "api": url_for("library_data.api_entry", filing_number=_MARK, _external=True),
        }

    def for_key(self, key: str) -> dict:
        """The links of the entry ``key`` names (:func:`registry.library.public.entry_key`)."""
        quoted = quote(key, safe="")
        return {name: template.replace(_MARK, quoted) for name, template in self.templates.items()}

    def __call__(self, row: dict) -> dict:
        return self.for_key(public.entry_key(row["filing_number"], row["filing_id"]))


def _entry(key: str) -> dict:
    """The entry (with its schema version) of the public filing ``key`` names. Raises NotFound otherwise: drafts
    and filings in review are not there."""
    filing = public.find_public(db(), key)
    if filing is None:
        raise NotFound(f"No public library entry is named {key!r}.", code="entry_not_found")
    body = public.entry(db(), current_app.extensions["registry"].content, filing)
    return {"schema_version": "1", **body}


def _not_found_problem(error: NotFound) -> Response:
    return problems.problem(404, "Not found", error.message, code=error.code)


def _download(body, media_type: str, filename: str) -> Response:
    response = Response(body, content_type=media_type)
    response.headers["Content-Disposition"] = f"inline; filename*=UTF-8''{quote(filename, safe='')}"
    return response


def _schema_link() -> str:
    return f'<{url_for("meta.schema_document", name=ENTRY_SCHEMA, _external=True)}>; rel="describedby"'


# --- open data files ------------------------------------------------------------------------------------------------


@bp.get("/library.json")
@allow(PUBLIC)
def library_json():
    """The whole public library as JSON, streamed: each filing's list row with the links to its entry."""
    links = Links()
    head = {
        "generated_at": utcnow().isoformat(),
        "entry_schema": url_for("meta.schema_document", name=ENTRY_SCHEMA, _external=True),
        "links": {
            "csv": url_for("library_data.library_csv", _external=True),
            "feed": url_for("library_data.feed", _external=True),
            "api": url_for("library_data.api_list", _external=True),
        },
    }
    rows = opendata.iter_summaries(session=db())
    body = stream_with_context(opendata.stream_json(rows, links=links, head=head))
    return _download(body, "application/json", "library.json")


@bp.get("/library.csv")
@allow(PUBLIC)
def library_csv():
    """The whole public library as CSV (UTF-8 with BOM), streamed: one row per public filing."""
    rows = opendata.iter_summaries(session=db())
    body = stream_with_context(opendata.stream_library_csv(rows, links=Links()))
    return _download(body, CSV_TYPE, "library.csv")


@bp.get("/library/<filing_number>.json")
@allow(PUBLIC)
def entry_json(filing_number: str):
    """One entry as JSON, valid against the published library-entry schema."""
    try:
        body = _entry(filing_number)
    except NotFound as error:
        return _not_found_problem(error)
    response = json_response(body)
    response.headers["Link"] = _schema_link()
    response.headers["Content-Disposition"] = f"inline; filename*=UTF-8''{quote(filing_number + '.json', safe='')}"
    return response


@bp.get("/library/<filing_number>.csv")
@allow(PUBLIC)
def entry_csv(filing_number: str):
    """One entry as CSV: its key facts, then its audits' figures per group, one per row."""
    try:
        body = _entry(filing_number)
    except NotFound as error:
        return _not_found_problem(error)
    return _download(opendata.entry_csv(body), CSV_TYPE, f"{filing_number}.csv")


def _authority() -> str:
    """The host name in the feed's tag: URIs: PUBLIC_URL's when configured (ids stay the same whichever address a
    reader used), else the request's."""
    configured = current_app.config.get("PUBLIC_URL")
    return urlsplit(configured or request.host_url).hostname or "localhost"


@bp.get("/library/feed.atom")
@allow(PUBLIC)
def feed():
    """The Atom feed of decisions, suspensions, revocations, expiries and supersessions, newest first."""
    links = Links()
    body = opendata.atom_feed(
        public.log_events(db(), limit=opendata.FEED_SIZE),
        authority=_authority(),
        self_url=url_for("library_data.feed", _external=True),
        library_url=request.url_root.rstrip("/") + "/library",
        entry_url=lambda key: links.for_key(key)["page"],
        log_entry_url=lambda index: url_for("decision_log_api.entries", start=index, end=index + 1, _external=True),
        now=utcnow(),
    )
    return Response(body, content_type="application/atom+xml; charset=utf-8")


# --- the public API -------------------------------------------------------------------------------------------------


@bp.get(API)
@allow(PUBLIC)
def api_list():
    """Search and filter the public library, one page at a time (the same query as the library page)."""
    return page_cache.serve(lambda _csrf_token: _api_list())


def _api_list():
    query = opendata.parse_query(
        request.args,
        session=db(),
        default_per_page=current_app.config["API_PAGE_SIZE"],
        language="zh" if is_chinese() else "en",
    )
    results = search.find(db(), query, fragments.Rankings(current_app))
    links = Links()

    def at(number: int) -> str:
        return url_for("library_data.api_list", _external=True, **opendata.query_params(query, page=number))

    navigation = {"self": at(results.page), "first": at(1), "last": at(results.pages)}
    if results.page > 1:
        navigation["prev"] = at(results.page - 1)
    if results.page < results.pages:
        navigation["next"] = at(results.page + 1)
    return json_response(
        {
            "items": [row | {"links": links(row)} for row in results.rows],
            "total": results.total,
            "page": results.page,
            "per_page": results.per_page,
            "pages": results.pages,
            "sort": results.sort,
            "links": navigation,
        }
    )


@bp.get(f"{API}/standings")
@allow(PUBLIC)
def api_standings():
    """Each city's light (red, yellow, green), the counts behind it, and the rules that give it."""
    now = utcnow()
    return page_cache.serve(lambda _csrf_token: _api_standings(now), now=now, every_step=True)


def _api_standings(now):
    items = _standings(now)
    return json_response(
        {
            "as_of": now.isoformat(),
            "rules": list(standings.RULES),
            "totals": standings.totals(items),
            "items": [s.to_json() for s in items],
        }
    )


def _standings(now) -> list[standings.CityStanding]:
    """The lights at ``now``; the page made of them holds until a light may change by the time that passes."""
    page_cache.holds_until(standings.next_change(session=db(), now=now))
    return standings.standings(session=db(), now=now)


@bp.get(f"{API}/statistics")
@allow(PUBLIC)
def api_statistics():
    """Public filings by city, scenario, tier, state and decision outcome, and decisions per month."""
    return page_cache.serve(lambda _csrf_token: json_response(statistics.statistics(session=db(), now=utcnow())))


@bp.get(f"{API}/<filing_number>")
@allow(PUBLIC)
def api_entry(filing_number: str):
    """One entry (the same document as /library/<filing number>.json)."""
    return page_cache.serve(lambda _csrf_token: _api_entry(filing_number))


def _api_entry(filing_number: str):
    response = json_response(_entry(filing_number))
    response.headers["Link"] = _schema_link()
    return response


# --- pages ----------------------------------------------------------------------------------------------------------


@bp.get("/library/standings")
@allow(PUBLIC)
def standings_page():
    now = utcnow()
    return page_cache.serve(lambda csrf_token: _standings_page(now, csrf_token), now=now, every_step=True)


def _standings_page(now, csrf_token):
    items = _standings(now)
    return render_template(
        "library/standings.html",
        items=items,
        rules=standings.RULES,
        totals=standings.totals(items),
        as_of=now,
        light_names={standings.RED: _("Red"), standings.YELLOW: _("Yellow"), standings.GREEN: _("Green")},
        unanswered_days=standings.UNANSWERED_DAYS,
        due_soon_days=standings.DUE_SOON_DAYS,
        entry_link=Links().for_key,
        csrf_token=csrf_token,
    )


def _chart(chart_id: str, title: str, key_header: str, rows: list[tuple[str, int]]) -> dict:
    return {
        "id": chart_id,
        "title": title,
        "key_header": key_header,
        "rows": rows,
        "top": max((c for _, c in rows), default=0),
    }


@bp.get("/library/statistics")
@allow(PUBLIC)
def statistics_page():
    return page_cache.serve(_statistics_page)


def _statistics_page(csrf_token):
    figures = statistics.statistics(session=db(), now=utcnow())
    charts = [
        _chart(
            "by-city",
            _("Public filings by city"),
            _("City"),
            [(pick(r["name_zh"], r["name_en"]), r["count"]) for r in figures["by_city"]],
        ),
        _chart(
            "by-scenario",
            _("Public filings by scenario"),
            _("Scenario"),
            [(labels.label(labels.SCENARIOS, r["scenario"]), r["count"]) for r in figures["by_scenario"]],
        ),
        _chart(
            "by-tier",
            _("Public filings by risk tier"),
            _("Risk tier"),
            [(r["tier"] or _("Not assessed"), r["count"]) for r in figures["by_tier"]],
        ),
        _chart(
            "by-decision",
            _("Public filings by decision"),
            _("Decision"),
            [(labels.label(labels.STATES, r["outcome"]), r["count"]) for r in figures["by_decision"]],
        ),
        _chart(
            "by-state",
            _("Public filings by current state"),
            _("State"),
            [(labels.label(labels.STATES, r["state"]), r["count"]) for r in figures["by_state"]],
        ),
    ]
    months = figures["decisions_by_month"]
    return render_template(
        "library/statistics.html",
        figures=figures,
        charts=charts,
        months=months,
        month_chart=_chart(
            "by-month", _("Decisions per month"), _("Month"), [(m["month"], m["total"]) for m in months]
        ),
        outcomes=statistics.OUTCOMES,
        csrf_token=csrf_token,
    )
