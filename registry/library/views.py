"""The public library's pages: the list with search, filters, sorting and pages, and each filing's entry page.

No login, no JavaScript: the search form is a GET form, so every query has a stable address, and the charts are
server-rendered SVG with a table beside them. Everything shown comes from registry.library.public (the privacy
boundary) through registry.library.search; the views only parse, call and arrange for reading.
"""

from __future__ import annotations

from datetime import datetime

from flask import Blueprint, current_app, redirect, render_template, request, url_for
from flask_babel import gettext as _

from registry.access import allow
from registry.audit_jobs.views import explain_context, figure_names, group_text, state_names
from registry.authz import PUBLIC
from registry.cities import service as cities
from registry.db import utcnow
from registry.errors import NotFound
from registry.filings import risk
from registry.i18n import is_chinese
from registry.library import fragments, page_cache, public, search
from registry.request_db import db
from registry.web import figures

bp = Blueprint("library", __name__)

GROUP_FIGURES = ("selection_rate", "accuracy", "recall", "fpr")
PAGE_WINDOW = 2  # page links shown either side of the current page
# The public states in the order of the lifecycle, for the state filter.
STATE_ORDER = ("approved", "approved_with_conditions", "rejected", "suspended", "revoked", "expired", "superseded")


def sort_names() -> dict[str, str]:
    return {
        search.RELEVANCE: _("Best match"),
        search.NEWEST: _("Newest decision first"),
        search.NAME: _("Name"),
        search.CITY: _("City"),
        search.TIER: _("Highest risk tier first"),
    }


def outcome_names() -> dict[str, str]:
    return {
        "approved": _("Approved"),
        "approved_with_conditions": _("Approved with conditions"),
        "rejected": _("Rejected"),
    }


def _page_numbers(page: int, pages: int) -> list[int | None]:
    """The page links to show: the first, the last and a window around ``page``; None marks a gap."""
    shown = sorted({1, pages, *range(max(1, page - PAGE_WINDOW), min(pages, page + PAGE_WINDOW) + 1)})
    out: list[int | None] = []
    for number in shown:
        if out and number - (out[-1] or 0) > 1:
            out.append(None)
        out.append(number)
    return out


def render_library(template: str = "library/index.html", csrf_token=None):
    """The library list for the request's query parameters (also the start page of anonymous visitors).
    ``csrf_token``: what the page calls for its CSRF token (registry.library.page_cache), else Flask-WTF's."""
    session = db()
    city_list = cities.list_cities(session=session)
    query = search.parse(request.args, cities=[c.code for c in city_list], language="zh" if is_chinese() else "en")
    results = search.find(session, query, fragments.Rankings(current_app))
    for row in results.rows:
        row["entry_key"] = public.entry_key(row["filing_number"], row["filing_id"])
    return render_template(
        template,
        query=query,
        results=results,
        cities=city_list,
        city_names={c.code: c for c in city_list},
        years=search.decision_years(session),
        tiers=risk.TIERS,
        public_states=[s for s in STATE_ORDER if s in public.PUBLIC_STATE_VALUES],
        outcomes=outcome_names(),
        sorts=sort_names(),
        page_numbers=_page_numbers(results.page, results.pages),
        page_url=lambda **changes: url_for("library.index", **query.args(**changes)),
        result_rows=fragments.Rows(current_app),
        **({"csrf_token": csrf_token} if csrf_token is not None else {}),
    )


@bp.get("/library")
@allow(PUBLIC)
def index():
    return page_cache.serve(lambda csrf_token: render_library(csrf_token=csrf_token))


# --- the entry page ------------------------------------------------------------------------------------------------


def _key(group: dict | None) -> tuple:
    return tuple(sorted((str(k), str(v)) for k, v in (group or {}).items()))


def _chart(groups: list[dict]) -> dict:
    """Bars of the selection rate per group with its interval, laid out for a server-rendered SVG."""
    label_width, bar_width, row_height = 220, 360, 28
    bars = []
    for i, g in enumerate(groups):
        rate = g["row"].get("selection_rate")
        interval = g["ci"].get("selection_rate")
        bars.append(
            {
                "label": g["label"],
                "insufficient": bool(g["row"].get("insufficient_data")),
                "y": 10 + i * row_height,
                "value": rate,
                "width": round(max(0.0, min(1.0, rate or 0.0)) * bar_width, 1),
                "ci_low": round(label_width + interval[0] * bar_width, 1) if _pair(interval) else None,
                "ci_high": round(label_width + interval[1] * bar_width, 1) if _pair(interval) else None,
            }
        )
    return {
        "bars": bars,
        "label_width": label_width,
        "bar_width": bar_width,
        "height": 40 + len(bars) * row_height,
        "width": label_width + bar_width + 80,
    }


def _pair(interval) -> bool:
    return (
        isinstance(interval, list | tuple) and len(interval) == 2 and all(isinstance(x, int | float) for x in interval)
    )


def _audit(audit: dict) -> dict:
    """One public audit arranged for reading: its groups (each attribute's values, then their intersections) with
    their intervals, and the chart of their selection rates."""
    report = audit.get("report") or {}
    intervals = report.get("intervals") or {}
    groups = []
    for attribute, rows in (report.get("by_attribute") or {}).items():
        ci_rows = {_key(r.get("group")): r for r in (intervals.get("by_attribute") or {}).get(attribute, [])}
        groups += [
            {"row": row, "ci": ci_rows.get(_key(row.get("group")), {}), "label": group_text(row.get("group"))}
            for row in rows
        ]
    if len(report.get("sensitive_attributes") or []) > 1:  # with one attribute the intersections are the same rows
        ci_rows = {_key(r.get("group")): r for r in intervals.get("by_group") or []}
        groups += [
            {"row": row, "ci": ci_rows.get(_key(row.get("group")), {}), "label": group_text(row.get("group"))}
            for row in report.get("by_group") or []
        ]
    for group in groups:  # the table's figure cells, written here: a dozen groups of nine cells each
        row, interval = group["row"], group["ci"]
        group["cells"] = [
            *(text for f in GROUP_FIGURES for text in (figures.pct(row.get(f)), figures.ci(interval.get(f)))),
            figures.num(row.get("impact_ratio")),
        ]
    return _audit_summary(audit) | {
        "groups": groups,
        "chart": _chart(groups),
        "claims": report.get("claims"),
        "level": intervals.get("level") or 0.95,
        "explain": explain_context(report.get("explainability")),
    }


def _date(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


@bp.get("/library/<filing_number>")
@allow(PUBLIC)
def entry(filing_number: str):
    """A filing's public entry. Its address is its filing number (a rejected filing's, its id); 404 for anything
    that is not public, drafts and filings in review included."""
    now = utcnow()
    return page_cache.serve(lambda csrf_token: _entry_page(filing_number, csrf_token, now), now=now)


def _entry_page(filing_number: str, csrf_token, now: datetime):
    filing = public.find_public(db(), filing_number)
    if filing is None:
        raise NotFound("There is no public library entry with this filing number.", code="entry_not_found")
    key = public.entry_key(filing.filing_number, filing.id)
    if key != filing_number:  # a numbered filing asked for by its id: one address per entry
        return redirect(url_for("library.entry", filing_number=key), 301)
    body = public.entry(db(), current_app.extensions["registry"].content, filing)
    due = _date(body.get("next_audit_due"))
    in_use = body["state"] in ("approved", "approved_with_conditions")
    if in_use and due is not None and due >= now:
        page_cache.holds_until(due)  # from then on the page marks the re-audit overdue: made again
    audits = body["audits"]
    return render_template(
        "library/entry.html",
        entry=body,
        entry_key=key,
        filing_number=key,  # the concern form's (registry.library.concern_views) entry key
        doc=body["document"],
        # The newest audit in full; the earlier ones listed, each in full on its own page (an entry re-audited five
        # times was five full reports long).
        audits=[_audit_summary(a) for a in audits],
        newest_audit=_audit(audits[-1]) if audits else None,
        questionnaire=risk.questionnaire(),
        risk_answers=_risk_answers(body.get("risk_assessment") or {}),
        next_audit=due,
        audit_overdue=in_use and due is not None and due < now,
        outcomes=outcome_names(),
        csrf_token=csrf_token,
        **_audit_helpers(),
    )


def _risk_answers(assessment: dict) -> list[tuple[dict, dict | None, dict | None]]:
    """Each answer of the impact self-assessment with its question and the option chosen (None where the
    questionnaire no longer has them: the entry shows the ids it recorded)."""
    questions = {q["id"]: q for q in risk.questionnaire()["questions"]}
    answers = []
    for answer in assessment.get("breakdown") or []:
        question = questions.get(answer.get("question_id"))
        options = (question or {}).get("options") or []
        answers.append((answer, question, next((o for o in options if o["id"] == answer.get("answer")), None)))
    return answers


def _audit_helpers() -> dict:
    """What library/_audit.html needs beside the audit."""
    return {
        "figures": figure_names(),
        "states": state_names(),
        "group_text": group_text,
        "group_figures": GROUP_FIGURES,
    }


def _audit_summary(audit: dict) -> dict:
    """An audit as the entry's list of audits shows it: its criteria and how many were met."""
    criteria = (audit.get("report") or {}).get("criteria") or []
    return audit | {"criteria": criteria, "met": sum(1 for c in criteria if c.get("status") == "pass")}


@bp.get("/library/<filing_number>/audits/<int:job_id>")
@allow(PUBLIC)
def audit(filing_number: str, job_id: int):
    """One published audit of a public entry, in full (the entry page shows its newest audit in full)."""
    return page_cache.serve(lambda csrf_token: _audit_page(filing_number, job_id, csrf_token))


def _audit_page(filing_number: str, job_id: int, csrf_token):
    filing = public.find_public(db(), filing_number)
    if filing is None:
        raise NotFound("There is no public library entry with this filing number.", code="entry_not_found")
    key = public.entry_key(filing.filing_number, filing.id)
    if key != filing_number:
        return redirect(url_for("library.audit", filing_number=key, job_id=job_id), 301)
    job = next((j for j in public.public_audit_jobs(db(), filing) if j.id == job_id), None)
    if job is None:
        raise NotFound("This entry has no published audit with this number.", code="audit_not_found")
    return render_template(
        "library/audit.html",
        filing=filing,
        entry_key=key,
        a=_audit(public.public_audit(current_app.extensions["registry"].content, job)),
        csrf_token=csrf_token,
        **_audit_helpers(),
    )
